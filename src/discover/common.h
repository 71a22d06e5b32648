// Private to src/discover: the data loop every attribution method shares (sub-batches, their
// ablated values, the clean logits KL needs) and the gradient pass the gradient methods share.
#pragma once
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "edgewise/attribution.h"
#include "edgewise/error.h"
#include "edgewise/safetensors.h"

namespace edgewise::discover {

/// One sub-batch of the dataset, trimmed to its longest prompt.
struct Part {
  Batch b;              ///< rows [i, j) of the dataset
  /// õ for these rows [n_src, b|1, T|1, D]. The last pass that reads it drops it before its
  /// backward (keep_gradient's `last_use`): the patched forward has taken the differences by then
  /// and the backward needs none of õ, so a big model's peak holds one store less.
  mutable at::Tensor ablated;
  at::Tensor clean_last;  ///< clean logits at the prediction positions [b, V] (no grad)
  at::Tensor positions;   ///< [b, 1] prediction positions
  double weight = 1.0;    ///< b / N: the part's share of the dataset mean
};

/// Calls f for every sub-batch of `data` (opt.batch_size rows), reporting progress as `stage`.
void for_each_part(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt,
                   const std::string& stage, const std::function<void(const Part&)>& f);

/// The metric's batch mean for logits at the prediction positions [b, V].
at::Tensor part_metric(const AttributionOptions& opt, const Part& p, const at::Tensor& last);

/// dM/dkeep = -dM/dmask for one pass: masks all `value` except `override` (when defined,
/// [n_src, n_dst] values replacing them), tokens, options (fixed differences, embeddings)
/// as given. Returns [n_src, n_dst] float64, scaled by the part's weight. `last_use`: no later
/// pass of this part reads p.ablated (it is released before the backward).
at::Tensor keep_gradient(const Model& model, const Graph& graph, const Part& p, const at::Tensor& tokens,
                         const AttributionOptions& opt, const PatchOptions& po, double value,
                         const at::Tensor& override = {}, bool last_use = false);

/// The clean run's source outputs minus the ablated values, (o - õ) [n_src, b, T, D].
at::Tensor clean_differences(const Model& model, const Graph& graph, const Part& p);

/// [n_src, n_dst] float64 of the real edges.
at::Tensor real_edge_mask(const Graph& graph);

/// A training run's safetensors checkpoint (Edge Pruning, circuit-tuning): its metadata must
/// name `format` and the run `key`; anything else fails naming the file. `what` names the
/// method in messages ("Edge Pruning").
struct RunCheckpoint {
  SafetensorsFile file;
  std::string path, what;
  /// The metadata value of k; a missing key means a foreign or damaged file.
  const std::string& meta(const std::string& k) const {
    const auto& md = file.metadata();
    auto it = md.find(k);
    if (it == md.end()) fail(path, "not an edgewise " + what + " checkpoint (no " + k + ")");
    return it->second;
  }
};
inline RunCheckpoint open_run_checkpoint(const std::string& path, const std::string& format, const std::string& key,
                                         const std::string& what) {
  RunCheckpoint ck{SafetensorsFile::open(path), path, what};
  if (ck.meta("format") != format) fail(path, "not an edgewise " + what + " checkpoint");
  if (ck.meta("run") != key)
    fail(path, "belongs to another run (checkpoint: " + ck.meta("run") + "; this run: " + key + ")");
  return ck;
}

/// FNV-1a over a tensor's values as int64: identifies a run's prompts in its checkpoint.
inline uint64_t fnv1a(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(c.data_ptr());
  for (int64_t i = 0; i < c.numel() * 8; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/// A search's JSON checkpoint (ACDC, path patching) to resume from: parsed, its "format" must be
/// `format` and its "fingerprint" equal `fp`, else the error names the file. Empty (null) when
/// there is nothing to resume: resume off, no path, or no file yet. `what` names the method.
inline nlohmann::json open_json_checkpoint(const std::string& path, bool resume, const std::string& format,
                                           const nlohmann::json& fp, const std::string& what) {
  if (!resume || path.empty() || !std::filesystem::exists(path)) return nullptr;
  nlohmann::json ck;
  try {
    std::ifstream f(path);
    ck = nlohmann::json::parse(f);
  } catch (const std::exception& ex) {
    fail(path, "not a readable " + what + " checkpoint (" + ex.what() + ")");
  }
  if (!ck.is_object() || ck.value("format", "") != format || !ck.contains("fingerprint"))
    fail(path, "not an edgewise " + what + " checkpoint");
  if (ck["fingerprint"] != fp)
    fail(path, "belongs to another run (checkpoint " + ck["fingerprint"].dump() + ", this run " + fp.dump() +
                   "); delete it or drop --resume");
  return ck;
}

using MethodFn = std::function<at::Tensor(const Model&, const Graph&, const Batch&, const AttributionOptions&)>;
/// Edge scores [n_src, n_dst] of each method (exact also serves node level itself).
at::Tensor eap(const Model&, const Graph&, const Batch&, const AttributionOptions&);
at::Tensor clean_corrupted(const Model&, const Graph&, const Batch&, const AttributionOptions&);
at::Tensor eap_ig_inputs(const Model&, const Graph&, const Batch&, const AttributionOptions&);
at::Tensor eap_ig_activations(const Model&, const Graph&, const Batch&, const AttributionOptions&);
at::Tensor mask_gradient(const Model&, const Graph&, const Batch&, const AttributionOptions&);
at::Tensor mask_gradient_ig(const Model&, const Graph&, const Batch&, const AttributionOptions&);
/// Exact: [n_src, n_dst], or [n_src] when opt.node_level.
at::Tensor exact(const Model&, const Graph&, const Batch&, const AttributionOptions&);

}  // namespace edgewise::discover
