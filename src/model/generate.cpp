// Next-token tables and greedy generation over the plain forward (generate.h).
#include <ATen/ATen.h>

#include <algorithm>

#include "edgewise/generate.h"
#include "edgewise/tokenizer.h"

namespace edgewise {

namespace {

at::Tensor last_logits(const Model& model, const std::vector<int32_t>& ids) {
  const std::vector<int64_t> v(ids.begin(), ids.end());
  const at::Tensor tokens = at::tensor(v, at::kLong).unsqueeze(0).to(model.device());  // [1, T]
  return model.forward(tokens).index({0, -1});                                            // [V]
}

}  // namespace

NextTokens next_tokens(const Model& model, const std::vector<int32_t>& ids, int64_t k) {
  at::NoGradGuard ng;
  const at::Tensor logits = last_logits(model, ids).to(at::kCPU);
  const at::Tensor probs = logits.softmax(-1);
  auto [p, idx] = probs.topk(std::min<int64_t>(k, probs.size(0)));
  NextTokens r;
  for (int64_t i = 0; i < idx.size(0); ++i) {
    const int64_t id = idx[i].item<int64_t>();
    r.ids.push_back(id);
    r.probs.push_back(p[i].item<float>());
    r.logits.push_back(logits[id].item<float>());
  }
  return r;
}

std::vector<int32_t> generate_greedy(const Model& model, std::vector<int32_t> ids, int64_t n,
                                     const std::function<void(const std::vector<int32_t>&)>& on_token) {
  at::NoGradGuard ng;
  const size_t prompt_len = ids.size();
  const auto eos = model.has_tokenizer() ? model.tokenizer().eos_id() : std::nullopt;
  for (int64_t i = 0; i < n; ++i) {
    if (ids.size() >= static_cast<size_t>(model.config().n_ctx)) break;
    const int32_t next = static_cast<int32_t>(last_logits(model, ids).argmax().item<int64_t>());
    ids.push_back(next);
    if (on_token) on_token(ids);
    if (eos && next == *eos) break;
  }
  return std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(prompt_len), ids.end());
}

}  // namespace edgewise
