// FLAP (include/edgewise/path_patching.h): channel statistics through the forward's hooks
// (attn.hook_z = the output projection's input, mlp.hook_post = the down projection's input),
// the fluctuation metrics, AL-AM selection, the pruned model by mean replacement (= bias
// compensation) and the cliff point of a sparsity sweep.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/path_patching.h"
#include "../model/internal.h"

namespace edgewise {

const char* flap_metric_name(FlapMetric m) { return enum_name(kFlapMetricNames, m); }
FlapMetric flap_metric_from_string(const std::string& s) {
  std::string l = s;
  for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return enum_parse(kFlapMetricNames, l, "flap", "FLAP metric");
}
const char* cliff_name(Cliff c) { return enum_name(kCliffNames, c); }
Cliff cliff_from_string(const std::string& s) { return enum_parse(kCliffNames, s, "flap", "cliff rule"); }

namespace {

std::string zname(int64_t l) { return "blocks." + std::to_string(l) + ".attn.hook_z"; }
std::string pname(int64_t l) { return "blocks." + std::to_string(l) + ".mlp.hook_post"; }

// Per layer standardisation over the last dimension (unbiased SD).
at::Tensor standardise(const at::Tensor& x) {
  at::Tensor mean = x.mean(-1, true);
  at::Tensor sd = x.std(-1, /*unbiased=*/true, true);
  return (x - mean) / sd.clamp_min(1e-300);
}

FlapScores from_channel_scores(const Model& model, const at::Tensor& attn, const at::Tensor& mlp) {
  const ModelConfig& c = model.config();
  FlapScores s;
  s.heads = standardise(attn).view({c.n_layers, c.n_heads, c.d_head}).mean(-1);
  s.mlp = standardise(mlp);
  return s;
}

}  // namespace

FlapStats flap_stats(const Model& model, const at::Tensor& tokens, const at::Tensor& lengths, int64_t batch_size) {
  if (batch_size < 1) fail("flap", "batch size must be >= 1");
  at::NoGradGuard ng;
  const ModelConfig& c = model.config();
  const int64_t L = c.n_layers, HD = c.n_heads * c.d_head, F = c.d_mlp, N = tokens.size(0);
  at::Tensor as = at::zeros({L, HD}, at::kDouble), aq = at::zeros({L, HD}, at::kDouble);
  at::Tensor ms = at::zeros({L, F}, at::kDouble), mq = at::zeros({L, F}, at::kDouble);
  double count = 0;
  std::set<std::string> names;
  for (int64_t l = 0; l < L; ++l) names.insert(zname(l)), names.insert(pname(l));
  const dist::Range mine = dist::my_range(N, batch_size);  // across ranks: the sums are summed below
  for (int64_t i = mine.begin; i < mine.end; i += batch_size) {
    const int64_t j = std::min(mine.end, i + batch_size);
    at::Tensor len = lengths.defined() ? lengths.narrow(0, i, j - i) : at::Tensor();
    const int64_t T = len.defined() ? len.max().item<int64_t>() : tokens.size(1);
    at::Tensor t = tokens.narrow(0, i, j - i).narrow(1, 0, T);
    at::Tensor real = model_detail::real_token_mask(len, j - i, T, at::kDouble, at::kCPU).unsqueeze(-1);  // [b, T, 1]
    count += real.sum().item<double>();
    Hooks hk(names, [&](const at::Tensor& x, const std::string& name) {
      const int64_t l = std::stoll(name.substr(7, name.find('.', 7) - 7));  // in a pipeline: this stage's layers only
      at::Tensor v = x.to(at::kCPU, at::kDouble).reshape({j - i, T, -1}) * real;  // the statistics are small: CPU
      if (name.find("hook_z") != std::string::npos) {
        as[l] += v.sum(at::IntArrayRef{0, 1});
        aq[l] += (v * v).sum(at::IntArrayRef{0, 1});
      } else {
        ms[l] += v.sum(at::IntArrayRef{0, 1});
        mq[l] += (v * v).sum(at::IntArrayRef{0, 1});
      }
      return at::Tensor();  // read only
    });
    model.forward(t, &hk);
  }
  if (dist::active()) {
    at::Tensor sums = at::cat({as.flatten(), aq.flatten(), ms.flatten(), mq.flatten(), at::full({1}, count, at::kDouble)});
    dist::all_reduce_sum(sums, "FLAP's statistics");
    // In a pipeline each stage's hooks saw its own layers (the others' rows are zero); the token
    // count is every stage's alike.
    at::Tensor per_layer = sums.narrow(0, 0, sums.numel() - 1);
    dist::sum_over_stages(per_layer, "FLAP's statistics");
    int64_t at_ = 0;
    for (at::Tensor* t : {&as, &aq, &ms, &mq}) {
      t->copy_(sums.narrow(0, at_, t->numel()).view(t->sizes()));
      at_ += t->numel();
    }
    count = sums[at_].item<double>();
  }
  if (!(count > 0)) fail("flap", "no calibration tokens");
  FlapStats s;
  s.tokens = static_cast<int64_t>(count);
  s.attn_mean = as / count;
  s.attn_sq = aq / count;
  s.attn_var = (s.attn_sq - s.attn_mean * s.attn_mean).clamp_min(0);
  s.mlp_mean = ms / count;
  s.mlp_sq = mq / count;
  s.mlp_var = (s.mlp_sq - s.mlp_mean * s.mlp_mean).clamp_min(0);
  return s;
}

std::pair<at::Tensor, at::Tensor> flap_channel_metric(const Model& model, const FlapStats& s, FlapMetric m) {
  const ModelConfig& c = model.config();
  std::vector<at::Tensor> attn, mlp;
  const auto [l0, l1] = model.held_layers();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (l < l0 || l >= l1) {  // another pipeline stage's layer: its rows come in the sum below
      attn.push_back(at::zeros({c.n_heads * c.d_head}, at::kDouble));
      mlp.push_back(at::zeros({c.d_mlp}, at::kDouble));
      continue;
    }
    const std::string p = "blk." + std::to_string(l) + ".";
    at::Tensor wo = model.weight(p + "attn_output.weight").to(at::kCPU, at::kDouble);  // [D, H*Dh]
    at::Tensor wd = model.weight(p + "ffn_down.weight").to(at::kCPU, at::kDouble);     // [D, F]
    switch (m) {
      case FlapMetric::IFV:
        attn.push_back(s.attn_var[l]);
        mlp.push_back(s.mlp_var[l]);
        break;
      case FlapMetric::WIFV:
        attn.push_back(s.attn_var[l] * wo.pow(2).sum(0));
        mlp.push_back(s.mlp_var[l] * wd.pow(2).sum(0));
        break;
      case FlapMetric::WIFN:
        attn.push_back(wo.abs().mean(0) * s.attn_sq[l].sqrt());
        mlp.push_back(wd.abs().mean(0) * s.mlp_sq[l].sqrt());
        break;
    }
  }
  at::Tensor a = at::stack(attn), f = at::stack(mlp);
  dist::sum_over_stages(a, "FLAP's channel metric");
  dist::sum_over_stages(f, "FLAP's channel metric");
  return {a, f};
}

FlapScores flap_scores(const Model& model, const FlapStats& clean, FlapMetric m) {
  auto [a, f] = flap_channel_metric(model, clean, m);
  return from_channel_scores(model, a * a, f);
}

FlapScores flap_contrastive_scores(const Model& model, const FlapStats& clean, const FlapStats& corrupted,
                                   FlapMetric m) {
  auto [a1, f1] = flap_channel_metric(model, clean, m);
  auto [a2, f2] = flap_channel_metric(model, corrupted, m);
  return from_channel_scores(model, (a1 * a1 - a2 * a2).abs(), (f1 - f2).abs());
}

PruneSet flap_select(const Model& model, const FlapScores& s, double sparsity, bool include_mlp) {
  if (!(sparsity >= 0 && sparsity <= 1)) fail("flap", "sparsity must be in [0, 1], got " + std::to_string(sparsity));
  const ModelConfig& c = model.config();
  const int64_t L = c.n_layers, H = c.n_heads, F = c.d_mlp, NH = L * H;
  PruneSet out;
  out.heads = at::zeros({L, H}, at::kBool);
  out.channels = at::ones({L, F}, at::kBool);
  at::Tensor hs = s.heads.contiguous().to(at::kDouble);
  const double* hp = hs.data_ptr<double>();
  if (!include_mlp) {
    const auto keep = static_cast<int64_t>(std::llround(static_cast<double>(NH) * (1.0 - sparsity)));
    std::vector<int64_t> idx(NH);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return hp[a] > hp[b]; });
    bool* op = out.heads.data_ptr<bool>();
    for (int64_t i = 0; i < keep; ++i) op[idx[i]] = true;
    return out;
  }
  out.channels.fill_(false);
  at::Tensor ms = s.mlp.contiguous().to(at::kDouble);
  const double* mp = ms.data_ptr<double>();
  const int64_t n = NH + L * F;
  const double D = static_cast<double>(c.d_model), Dh = static_cast<double>(c.d_head);
  const double w_head = 2 * D * Dh + 2 * D * Dh * static_cast<double>(c.n_kv_heads) / static_cast<double>(H);
  const double w_chan = D * (c.gated_mlp ? 3 : 2);
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  auto score = [&](int64_t i) { return i < NH ? hp[i] : mp[i - NH]; };
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
  const double budget = (1.0 - sparsity) * (static_cast<double>(NH) * w_head + static_cast<double>(L * F) * w_chan);
  double used = 0;
  bool* hp_out = out.heads.data_ptr<bool>();
  bool* cp_out = out.channels.data_ptr<bool>();
  for (int64_t i : idx) {
    const double w = i < NH ? w_head : w_chan;
    if (used + w > budget * (1 + 1e-12)) break;
    used += w;
    if (i < NH) hp_out[i] = true;
    else cp_out[i - NH] = true;
  }
  return out;
}

PruneSet prune_union(const PruneSet& a, const PruneSet& b) {
  return {a.heads.logical_or(b.heads), a.channels.logical_or(b.channels)};
}

double pruned_metric(const Model& model, const Batch& data, const PruneSet& keep, const FlapStats& calibration,
                     Ablation ablation, Metric metric, int64_t batch_size) {
  if (batch_size < 1) fail("flap", "batch size must be >= 1");
  if (ablation != Ablation::Mean && ablation != Ablation::Resample)
    fail("flap", "pruned components take their calibration mean (mean) or the corrupted prompt's value (resample)");
  if (ablation == Ablation::Resample && !data.aligned)
    fail("flap", "resample needs clean and corrupted prompts of equal token counts");
  at::NoGradGuard ng;
  const ModelConfig& c = model.config();
  const int64_t L = c.n_layers, H = c.n_heads, Dh = c.d_head, N = data.size();
  std::set<std::string> names;
  for (int64_t l = 0; l < L; ++l) names.insert(zname(l)), names.insert(pname(l));
  const auto dt = model.weight("blk." + std::to_string(model.held_layers().first) + ".attn_output.weight").scalar_type();
  const c10::Device dev = model.device();
  at::Tensor keep_h = keep.heads.to(dev, dt).view({L, 1, 1, H, 1});
  at::Tensor keep_c = keep.channels.to(dev, dt).view({L, 1, 1, c.d_mlp});
  at::Tensor mean_z = calibration.attn_mean.to(dev, dt).view({L, 1, 1, H, Dh});
  at::Tensor mean_p = calibration.mlp_mean.to(dev, dt).view({L, 1, 1, c.d_mlp});
  double total = 0;
  const dist::Range mine = dist::my_range(N, batch_size);  // across ranks: summed below
  for (int64_t i = mine.begin; i < mine.end; i += batch_size) {
    Batch b = data.rows(i, std::min(mine.end, i + batch_size));
    std::map<std::string, at::Tensor> other;
    if (ablation == Ablation::Resample) {
      Hooks cap = Hooks::capture(names, &other);
      model.forward(b.corrupted, &cap);
    }
    Hooks hk(names, [&](const at::Tensor& x, const std::string& name) {
      const int64_t l = std::stoll(name.substr(7, name.find('.', 7) - 7));
      const bool z = name.find("hook_z") != std::string::npos;
      at::Tensor k = z ? keep_h[l] : keep_c[l];
      at::Tensor repl = ablation == Ablation::Resample ? other.at(name) : (z ? mean_z[l] : mean_p[l]);
      return x * k + repl * (1 - k);
    });
    at::Tensor clean_last;
    if (metric_needs_clean_logits(metric)) clean_last = logits_at(model.forward(b.clean), b.clean_pos);
    at::Tensor last = logits_at(model.forward(b.clean, &hk), b.clean_pos);
    total += static_cast<double>(b.size()) / N * metric_mean(metric, last, b, clean_last).item<double>();
  }
  std::vector<double> sum = {total};
  dist::all_reduce_sum(sum, "the pruned model's metric");
  return sum[0];
}

int64_t cliff_point(const std::vector<double>& p, Cliff how) {
  const int64_t K = static_cast<int64_t>(p.size());
  if (how == Cliff::Fixed || K < 3) return -1;
  const int64_t w = std::max<int64_t>(2, std::llround(static_cast<double>(K) / 10.0));
  const auto [lo, hi] = std::minmax_element(p.begin(), p.end());
  const double drop = (*hi - *lo) / 10.0;
  auto D = [&](int64_t i) {
    double m = p[i + 1];
    for (int64_t j = i + 1; j < std::min(K, i + w); ++j) m = std::min(m, p[j]);
    return std::fabs(p[i] - m);
  };
  if (how == Cliff::First) {
    for (int64_t i = 0; i + w < K; ++i) {
      if (!(D(i) >= drop) || !(drop > 0)) continue;
      for (int64_t k = 0; k < w && i + k + 1 < K; ++k)
        if (p[i + k] - p[i + k + 1] >= drop) return i + k;
      return i;
    }
    return -1;
  }
  // Biggest.
  int64_t c = -1;
  double best = -1;
  for (int64_t i = 0; i + w < K; ++i)
    if (D(i) > best) best = D(i), c = i;
  if (c < 0 || !(drop > 0)) return -1;
  for (int64_t k = 1; k < w && c + k + w < K; ++k)
    if (D(c) - D(c + k) >= drop) return c + k - 1;
  return c;
}

}  // namespace edgewise
