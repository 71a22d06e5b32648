// Next-token tables and greedy generation over the plain forward (src/model/generate.cpp): what
// `edgewise run` and `edgewise generate` print, for any caller of the library.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "edgewise/model.h"

namespace edgewise {

/// The next token after a prompt: the k most probable ids (most probable first) with their
/// probabilities and logits at the last position (k is clamped to the logits' width).
struct NextTokens {
  std::vector<int64_t> ids;
  std::vector<double> probs, logits;
};
NextTokens next_tokens(const Model& model, const std::vector<int32_t>& ids, int64_t k);

/// Greedy continuation of `ids` (no key/value cache: one full forward per token): up to `n` new
/// tokens, stopping after the tokenizer's EOS or at the model's context length. `on_token` is
/// called with the whole sequence after each new token. Returns the new tokens.
std::vector<int32_t> generate_greedy(const Model& model, std::vector<int32_t> ids, int64_t n,
                                     const std::function<void(const std::vector<int32_t>&)>& on_token = {});

}  // namespace edgewise
