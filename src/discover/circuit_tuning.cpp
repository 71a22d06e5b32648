// Circuit-tuning (circuit_tuning.h): node scores by EAP through hooks on the plain forward,
// parameter parts and their masks, the trainable weight buffers, the masked SGD / AdamW, the
// round loop with checkpoints, the answer loss and perplexity.
#include "edgewise/circuit_tuning.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "common.h"
#include "edgewise/attribution.h"
#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/graph.h"
#include "edgewise/optim.h"
#include "edgewise/safetensors.h"
#include "../model/internal.h"

namespace edgewise {

namespace {

using Clock = std::chrono::steady_clock;
// -2: batches drawn from optim.h's epoch_order (a checkpoint of the earlier order would resume on other batches).
constexpr const char* kFormat = "edgewise-circuit-tuning-checkpoint-2";

// Neuron group j of G over F neurons: [j F / G, (j + 1) F / G).
int64_t group_lo(int64_t F, int64_t G, int64_t j) { return j * F / G; }

std::string blk(int64_t l, const char* name) { return "blk." + std::to_string(l) + "." + name; }

// The weights parts can reach (per layer), and the ones only the embedding / norm flags add.
constexpr const char* kPartWeights[] = {
    "attn_q.weight",   "attn_q.bias",   "attn_k.weight",      "attn_k.bias",      "attn_v.weight",
    "attn_v.bias",     "attn_output.weight", "attn_output.bias", "ffn_gate.weight", "ffn_gate.bias",
    "ffn_up.weight",   "ffn_up.bias",   "ffn_down.weight",    "ffn_down.bias"};
constexpr const char* kEmbeddingWeights[] = {"token_embd.weight", "position_embd.weight", "output.weight"};
constexpr const char* kLayerNormWeights[] = {"attn_norm.weight", "attn_norm.bias", "ffn_norm.weight", "ffn_norm.bias"};
constexpr const char* kFinalNormWeights[] = {"output_norm.weight", "output_norm.bias"};

const char* kind_name(ParamPart::Kind k) {
  switch (k) {
    case ParamPart::Q: return "q";
    case ParamPart::K: return "k";
    case ParamPart::V: return "v";
    case ParamPart::O: return "o";
    case ParamPart::MlpIn: return "in";
    case ParamPart::MlpOut: return "out";
  }
  return "?";
}

}  // namespace

std::string part_name(const ParamPart& p) {
  const std::string l = std::to_string(p.layer), i = std::to_string(p.index);
  switch (p.kind) {
    case ParamPart::Q: case ParamPart::O: return "a" + l + ".h" + i + "." + kind_name(p.kind);
    case ParamPart::K: case ParamPart::V: return "a" + l + ".kv" + i + "." + kind_name(p.kind);
    case ParamPart::MlpIn: case ParamPart::MlpOut: return "m" + l + ".g" + i + "." + kind_name(p.kind);
  }
  return "?";
}

std::string tune_node_name(const TuneNode& n, int64_t mlp_heads) {
  // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wstringop-overflow) on the chain of
  // "a" + std::to_string(...) + ... temporaries here.
  std::string s = n.mlp ? "m" : "a";
  s += std::to_string(n.layer);
  if (!n.mlp || mlp_heads > 1) {
    s += n.mlp ? ".g" : ".h";
    s += std::to_string(n.index);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Node scores

NodeScores tune_node_scores(const Model& model, const Batch& data, Ablation ablation, Metric metric,
                            int64_t mlp_heads, int64_t batch_size) {
  const ModelConfig& c = model.config();
  // In a pipeline the hooks of this stage's layers [l0, l1) run here; the other layers' scores
  // come from their stages (summed at the end).
  const auto [l0, l1] = model.held_layers();
  const int64_t L = c.n_layers, H = c.n_heads, F = c.d_mlp, G = mlp_heads;
  if (G < 1 || G > F) fail("circuit-tuning", "MLP heads must be between 1 and the MLP width " + std::to_string(F));
  const int64_t N = data.size();
  if (N == 0) fail("circuit-tuning", "no examples to score nodes on");
  if (ablation == Ablation::Resample && !data.aligned)
    fail("circuit-tuning", "resample ablation needs clean and corrupted prompts of equal token counts");
  std::vector<std::string> zname(L), pname(L);
  std::set<std::string> names;
  for (int64_t l = 0; l < L; ++l) {
    zname[l] = "blocks." + std::to_string(l) + ".attn.hook_z";
    pname[l] = "blocks." + std::to_string(l) + ".mlp.hook_post";
    names.insert(zname[l]);
    names.insert(pname[l]);
  }
  const int64_t T = data.clean.size(1);
  const at::TensorOptions acc = at::TensorOptions().dtype(at::kDouble).device(model.device());

  // Mean ablation: the dataset mean of each hook over real tokens (per position if asked).
  std::vector<at::Tensor> zmean(L), pmean(L);
  if (ablation == Ablation::Mean || ablation == Ablation::MeanPerPosition) {
    const bool per_pos = ablation == Ablation::MeanPerPosition;
    at::Tensor count = at::zeros({per_pos ? T : 1}, acc);
    for (int64_t l = 0; l < L; ++l) {
      zmean[l] = at::zeros({per_pos ? T : 1, H, c.d_head}, acc);
      pmean[l] = at::zeros({per_pos ? T : 1, F}, acc);
    }
    at::NoGradGuard ng;
    const dist::Range mine = dist::my_range(N, batch_size);  // across ranks: sums of each rank's batches
    for (int64_t b0 = mine.begin; b0 < mine.end; b0 += batch_size) {
      const Batch b = data.rows(b0, std::min(mine.end, b0 + batch_size));
      std::map<std::string, at::Tensor> cap;
      Hooks hooks = Hooks::capture(names, &cap);
      model.forward(b.clean, &hooks);
      const at::Tensor m = model_detail::real_token_mask(b.clean_len, b.clean.size(0), b.clean.size(1), at::kDouble, model.device());
      if (per_pos) count += m.sum(0);
      else count += m.sum();
      for (int64_t l = l0; l < l1; ++l) {
        const at::Tensor z = cap.at(zname[l]).to(at::kDouble) * m.view({m.size(0), m.size(1), 1, 1});
        const at::Tensor p = cap.at(pname[l]).to(at::kDouble) * m.unsqueeze(-1);
        zmean[l] += per_pos ? z.sum(0) : z.sum(at::IntArrayRef{0, 1}).unsqueeze(0);
        pmean[l] += per_pos ? p.sum(0) : p.sum(at::IntArrayRef{0, 1}).unsqueeze(0);
      }
    }
    if (dist::active()) {
      dist::all_reduce_sum(count, "circuit-tuning's mean counts");
      for (int64_t l = 0; l < L; ++l) {
        dist::all_reduce_sum(zmean[l], "circuit-tuning's head means");
        dist::all_reduce_sum(pmean[l], "circuit-tuning's MLP means");
      }
    }
    const at::Tensor cnt = count.clamp_min(1);
    for (int64_t l = 0; l < L; ++l) {
      zmean[l] = (zmean[l] / cnt.view({-1, 1, 1})).unsqueeze(0);  // [1, T or 1, H, Dh]
      pmean[l] = (pmean[l] / cnt.view({-1, 1})).unsqueeze(0);     // [1, T or 1, F]
    }
  }

  at::Tensor heads = at::zeros({L, H}, acc), mlps = at::zeros({L, G}, acc);
  const dist::Range mine = dist::my_range(N, batch_size);  // across ranks: sums of each rank's batches
  for (int64_t b0 = mine.begin; b0 < mine.end; b0 += batch_size) {
    const Batch b = data.rows(b0, std::min(mine.end, b0 + batch_size));
    const int64_t Tb = b.clean.size(1);
    std::vector<at::Tensor> zab(L), pab(L);  // ablated values for this batch
    if (ablation == Ablation::Resample) {
      at::NoGradGuard ng;
      std::map<std::string, at::Tensor> cap;
      Hooks hooks = Hooks::capture(names, &cap);
      model.forward(b.corrupted, &hooks);
      for (int64_t l = l0; l < l1; ++l) zab[l] = cap.at(zname[l]).to(at::kDouble), pab[l] = cap.at(pname[l]).to(at::kDouble);
    } else if (ablation == Ablation::Zero) {
      for (int64_t l = 0; l < L; ++l) zab[l] = at::zeros({1}, acc), pab[l] = at::zeros({1}, acc);
    } else {
      for (int64_t l = 0; l < L; ++l) {
        zab[l] = ablation == Ablation::MeanPerPosition ? zmean[l].narrow(1, 0, Tb) : zmean[l];
        pab[l] = ablation == Ablation::MeanPerPosition ? pmean[l].narrow(1, 0, Tb) : pmean[l];
      }
    }
    // The embedding output is made a leaf so that every later tensor is in the autograd graph;
    // the hooked values are read where they are (replacing them by leaves would cut the paths
    // through later heads and MLPs out of the earlier ones' gradients).
    std::map<std::string, at::Tensor> leaf;
    std::set<std::string> with_embed = names;
    with_embed.insert("hook_embed");
    Hooks hooks(with_embed, [&](const at::Tensor& t, const std::string& name) {
      if (name == "hook_embed") return t.detach().requires_grad_(true);
      leaf[name] = t;
      return at::Tensor();
    });
    const at::Tensor logits = model.forward(b.clean, &hooks);
    at::Tensor clean_last;
    if (metric_needs_clean_logits(metric)) clean_last = logits_at(logits, b.clean_pos).detach();
    const at::Tensor M = metric_per_example(metric, logits_at(logits, b.clean_pos), b, clean_last).sum();
    std::vector<at::Tensor> inputs;
    for (int64_t l = l0; l < l1; ++l) inputs.push_back(leaf.at(zname[l])), inputs.push_back(leaf.at(pname[l]));
    std::vector<at::Tensor> grads;
    if (dist::stages() == 1) {
      grads = torch::autograd::grad({M}, inputs, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                    /*create_graph=*/false, /*allow_unused=*/true);
    } else {
      // A whole backward, so that the pipeline's links run on every stage (a gradient restricted
      // to this stage's inputs would skip the one that sends the residual's gradient back).
      for (const at::Tensor& t : inputs) t.retain_grad();
      M.backward();
      for (const at::Tensor& t : inputs) grads.push_back(t.grad());
    }
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t i = l - l0;
      const at::Tensor z = inputs[2 * i].detach().to(at::kDouble), p = inputs[2 * i + 1].detach().to(at::kDouble);
      const at::Tensor gz = grads[2 * i].defined() ? grads[2 * i].to(at::kDouble) : at::zeros_like(z);
      const at::Tensor gp = grads[2 * i + 1].defined() ? grads[2 * i + 1].to(at::kDouble) : at::zeros_like(p);
      heads[l] += ((zab[l] - z) * gz).sum(at::IntArrayRef{0, 1, 3});
      const at::Tensor per_neuron = ((pab[l] - p) * gp).sum(at::IntArrayRef{0, 1});  // [F]
      for (int64_t j = 0; j < G; ++j) {
        const int64_t lo = group_lo(F, G, j), hi = group_lo(F, G, j + 1);
        mlps[l][j] += per_neuron.narrow(0, lo, hi - lo).sum();
      }
    }
  }
  dist::all_reduce_sum(heads, "circuit-tuning's head scores");
  dist::all_reduce_sum(mlps, "circuit-tuning's MLP scores");
  dist::sum_over_stages(heads, "circuit-tuning's head scores");  // each stage's rows its layers'
  dist::sum_over_stages(mlps, "circuit-tuning's MLP scores");
  return {(heads / static_cast<double>(N)).cpu(), (mlps / static_cast<double>(N)).cpu()};
}

// ---------------------------------------------------------------------------------------------
// Parts and masks

std::vector<ParamPart> parts_of_nodes(const ModelConfig& c, const std::vector<TuneNode>& nodes) {
  std::set<ParamPart> s;
  const int64_t R = c.n_heads / c.n_kv_heads;
  for (const TuneNode& n : nodes) {
    if (n.mlp) {
      s.insert({ParamPart::MlpIn, n.layer, n.index});
      s.insert({ParamPart::MlpOut, n.layer, n.index});
    } else {
      s.insert({ParamPart::Q, n.layer, n.index});
      s.insert({ParamPart::K, n.layer, n.index / R});
      s.insert({ParamPart::V, n.layer, n.index / R});
      s.insert({ParamPart::O, n.layer, n.index});
    }
  }
  return {s.begin(), s.end()};
}

std::map<std::string, at::Tensor> parameter_masks(const Model& model, const std::vector<ParamPart>& parts,
                                                  int64_t mlp_heads, bool embeddings, bool norms) {
  const ModelConfig& c = model.config();
  const auto& w = model.weights();
  const int64_t Dh = c.d_head, F = c.d_mlp, G = std::max<int64_t>(1, mlp_heads);
  std::map<std::string, at::Tensor> m;
  auto mask = [&](const std::string& name) -> at::Tensor* {
    auto it = w.find(name);
    if (it == w.end()) return nullptr;
    auto [mi, fresh] = m.try_emplace(name);
    if (fresh) mi->second = at::zeros(it->second.sizes(), it->second.options().requires_grad(false));
    return &mi->second;
  };
  auto rows = [&](const std::string& name, int64_t lo, int64_t n) {
    if (at::Tensor* t = mask(name)) t->narrow(0, lo, n).fill_(1);
  };
  auto cols = [&](const std::string& name, int64_t lo, int64_t n) {
    if (at::Tensor* t = mask(name)) t->narrow(1, lo, n).fill_(1);
  };
  auto whole = [&](const std::string& name) {
    if (at::Tensor* t = mask(name)) t->fill_(1);
  };
  for (const ParamPart& p : parts) {
    const int64_t l = p.layer;
    if (l < 0 || l >= c.n_layers) fail("circuit-tuning", "part " + part_name(p) + " is outside the model's layers");
    const bool head = p.kind == ParamPart::Q || p.kind == ParamPart::O, kv = p.kind == ParamPart::K || p.kind == ParamPart::V;
    const int64_t limit = head ? c.n_heads : kv ? c.n_kv_heads : G;
    if (p.index < 0 || p.index >= limit)
      fail("circuit-tuning", "part " + part_name(p) + ": index " + std::to_string(p.index) + " is outside the " +
                                 std::to_string(limit) + (head ? " query heads" : kv ? " key/value heads" : " MLP groups (mlp_heads)") +
                                 " of layer " + std::to_string(l));
    switch (p.kind) {
      case ParamPart::Q:
        rows(blk(l, "attn_q.weight"), p.index * Dh, Dh), rows(blk(l, "attn_q.bias"), p.index * Dh, Dh);
        break;
      case ParamPart::K:
        rows(blk(l, "attn_k.weight"), p.index * Dh, Dh), rows(blk(l, "attn_k.bias"), p.index * Dh, Dh);
        break;
      case ParamPart::V:
        rows(blk(l, "attn_v.weight"), p.index * Dh, Dh), rows(blk(l, "attn_v.bias"), p.index * Dh, Dh);
        break;
      case ParamPart::O:
        cols(blk(l, "attn_output.weight"), p.index * Dh, Dh), whole(blk(l, "attn_output.bias"));
        break;
      case ParamPart::MlpIn: {
        const int64_t lo = group_lo(F, G, p.index), n = group_lo(F, G, p.index + 1) - lo;
        rows(blk(l, "ffn_gate.weight"), lo, n), rows(blk(l, "ffn_gate.bias"), lo, n);
        rows(blk(l, "ffn_up.weight"), lo, n), rows(blk(l, "ffn_up.bias"), lo, n);
        break;
      }
      case ParamPart::MlpOut: {
        const int64_t lo = group_lo(F, G, p.index), n = group_lo(F, G, p.index + 1) - lo;
        cols(blk(l, "ffn_down.weight"), lo, n), whole(blk(l, "ffn_down.bias"));
        break;
      }
    }
  }
  if (embeddings)
    for (const char* n : kEmbeddingWeights) whole(n);
  if (norms) {
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (const char* n : kLayerNormWeights) whole(blk(l, n));
    for (const char* n : kFinalNormWeights) whole(n);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Loss and perplexity

// ---------------------------------------------------------------------------------------------
// Training

namespace {

// The trainable copy of the weights: owned buffers ("leaves"); a fused group (q/k/v, gate/up) is
// one leaf whose rows are the canonical tensors, a tied output shares the embedding's leaf.
struct Trainable {
  std::vector<at::Tensor> leaf;
  std::vector<std::string> leaf_name;  // the first canonical name of each leaf
  struct Ref {
    size_t leaf;
    int64_t row, rows;
  };
  std::map<std::string, Ref> ref;     // canonical name -> its rows of a leaf
  std::map<std::string, at::Tensor> fixed;  // canonical weights that are never trained (shared)

  std::map<std::string, at::Tensor> weights(bool detach) const {
    std::map<std::string, at::Tensor> w = fixed;
    for (const auto& [name, r] : ref) {
      const at::Tensor& b = detach ? leaf[r.leaf].detach() : leaf[r.leaf];
      w[name] = r.rows == b.size(0) && r.row == 0 ? b : b.narrow(0, r.row, r.rows);
    }
    return w;
  }
};

Trainable make_trainable(const Model& model, const std::set<std::string>& trainable) {
  Trainable tr;
  const auto& w = model.weights();
  std::set<std::string> done;
  for (const auto& group : fused_weight_groups(model.config())) {
    bool any = false;
    for (const auto& n : group) any = any || trainable.count(n);
    if (!any) continue;
    std::vector<at::Tensor> parts;
    for (const auto& n : group) parts.push_back(w.at(n));
    tr.leaf.push_back(at::cat(parts, 0).contiguous());
    tr.leaf_name.push_back(group[0]);
    int64_t row = 0;
    for (size_t i = 0; i < group.size(); ++i) {
      tr.ref[group[i]] = {tr.leaf.size() - 1, row, parts[i].size(0)};
      row += parts[i].size(0);
      done.insert(group[i]);
    }
  }
  std::map<const void*, size_t> by_ptr;  // a tied output shares its embedding's leaf
  for (const auto& [name, t] : w) {
    if (done.count(name)) continue;
    if (!trainable.count(name)) {
      tr.fixed[name] = t;
      continue;
    }
    auto it = by_ptr.find(t.data_ptr());
    if (it != by_ptr.end() && tr.leaf[it->second].sizes() == t.sizes()) {
      tr.ref[name] = {it->second, 0, t.size(0)};
      continue;
    }
    tr.leaf.push_back(t.clone().contiguous());
    tr.leaf_name.push_back(name);
    by_ptr[t.data_ptr()] = tr.leaf.size() - 1;
    tr.ref[name] = {tr.leaf.size() - 1, 0, t.size(0)};
  }
  return tr;
}

// Leaf masks from canonical masks (0/1; an entry of a shared leaf is in when any name has it).
std::vector<at::Tensor> leaf_masks(const Trainable& tr, const std::map<std::string, at::Tensor>& masks) {
  std::vector<at::Tensor> m(tr.leaf.size());
  for (const auto& [name, mk] : masks) {
    auto it = tr.ref.find(name);
    if (it == tr.ref.end()) fail("circuit-tuning", "internal: a mask for the untrainable weight '" + name + "'");
    const auto& r = it->second;
    if (!m[r.leaf].defined()) m[r.leaf] = at::zeros_like(tr.leaf[r.leaf]);
    at::Tensor rows = m[r.leaf].narrow(0, r.row, r.rows);
    rows.copy_(at::maximum(rows, mk));
  }
  return m;
}

// The batch of step k: examples k*B .. k*B+B-1 of the stream of per-epoch seeded permutations
// (optim.h's epoch_order, as Edge Pruning visits its examples; a batch may span two epochs).
at::Tensor batch_index(int64_t N, int64_t B, int64_t k, uint64_t seed) {
  at::Tensor idx = at::empty({B}, at::kLong);
  int64_t epoch = -1;
  at::Tensor perm;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t pos = k * B + i, e = pos / N;
    if (e != epoch) {
      epoch = e;
      perm = epoch_order(N, seed, e);
    }
    idx[i] = perm[pos % N];
  }
  return idx;
}

at::Tensor discovery_index(int64_t N, int64_t n, int64_t round, uint64_t seed) {
  // The first n of a permutation from its own stream of optim.h's generators (above the epochs').
  const at::Tensor perm = at::randperm(N, seeded_generator(seed, 2 * kOrderStream + static_cast<uint64_t>(round)));
  return std::get<0>(perm.narrow(0, 0, std::min(N, n)).sort());
}

std::string options_key(const TuneOptions& o) {
  std::ostringstream s;
  s.precision(17);
  s << "nodes=" << o.nodes << " edges=" << o.edges << " mlp_heads=" << o.mlp_heads
    << " ablation=" << ablation_name(o.ablation) << " metric=" << metric_name(o.metric)
    << " discovery=" << o.discovery_examples << " emb=" << o.train_embeddings << " norms=" << o.train_norms
    << " full=" << o.full << " opt=" << o.optimizer << " lr=" << o.lr << " momentum=" << o.momentum
    << " wd=" << o.weight_decay << " rounds=" << o.rounds << " steps=" << o.steps_per_round
    << " batch=" << o.batch_size << " warmup=" << o.warmup_steps << " clip=" << o.max_grad_norm << " seed=" << o.seed
    << " parts=";
  for (const auto& p : o.parts) s << part_name(p) << ",";
  return s.str();
}

void check_options(const TuneOptions& o) {
  auto bad = [](const std::string& m) { fail("circuit-tuning", m); };
  if (o.optimizer != "sgd" && o.optimizer != "adamw") bad("unknown optimiser '" + o.optimizer + "' (sgd, adamw)");
  if (!(o.lr > 0)) bad("the learning rate must be > 0");
  if (o.momentum < 0 || o.momentum >= 1) bad("momentum must be in [0, 1)");
  if (o.weight_decay < 0) bad("weight decay must be >= 0");
  if (o.rounds < 1) bad("rounds must be >= 1");
  if (o.steps_per_round < 1) bad("steps per round must be >= 1");
  if (o.batch_size < 1) bad("the batch size must be >= 1");
  if (o.warmup_steps < 0) bad("warm-up steps must be >= 0");
  if (o.max_grad_norm < 0) bad("the gradient norm limit must be >= 0");
  if (!o.full && o.parts.empty() && o.edges <= 0 && o.nodes <= 0) bad("choose a circuit size: nodes > 0 or edges > 0");
  if (o.mlp_heads < 1) bad("MLP heads must be >= 1");
  if (o.mlp_heads > 1 && o.edges > 0) bad("MLP heads need node selection (the graph's edges end at whole MLPs)");
  if (o.discovery_examples < 1) bad("discovery examples must be >= 1");
  check_run_control(o.run, "circuit-tuning");
}

// The round's circuit on the current weights.
TuneRound discover_round(const Model& current, const Batch& train, const TuneOptions& opt, int64_t round) {
  TuneRound r;
  r.round = round;
  const auto t0 = Clock::now();
  const ModelConfig& c = current.config();
  const Batch data = train.select(discovery_index(train.size(), opt.discovery_examples, round, opt.seed));
  if (opt.edges > 0) {
    const Graph graph = model_graph(current, true);
    AttributionOptions ao;
    ao.ablation = opt.ablation;
    ao.metric = opt.metric;
    const at::Tensor s = attribute("eap", current, graph, data, ao).abs();  // [n_src, n_dst]
    const int64_t R = graph.n_readers();
    const auto top = std::get<1>(s.flatten().topk(std::min<int64_t>(opt.edges, graph.n_edges()))).cpu();
    const auto* idx = top.data_ptr<int64_t>();
    std::set<ParamPart> parts;
    for (int64_t i = 0; i < top.numel(); ++i) {
      const int64_t src = idx[i] / R, dst = idx[i] % R;
      if (!graph.is_edge(src, dst)) continue;
      const auto& so = graph.source(src);
      if (so.kind == Graph::SourceKind::Head) parts.insert({ParamPart::O, so.layer, so.head});
      if (so.kind == Graph::SourceKind::Mlp) parts.insert({ParamPart::MlpOut, so.layer, 0});
      const auto& rd = graph.reader(dst);
      switch (rd.kind) {
        case Graph::ReaderKind::Q: parts.insert({ParamPart::Q, rd.layer, rd.head}); break;
        case Graph::ReaderKind::K: parts.insert({ParamPart::K, rd.layer, rd.head}); break;  // key/value head
        case Graph::ReaderKind::V: parts.insert({ParamPart::V, rd.layer, rd.head}); break;
        case Graph::ReaderKind::Mlp: parts.insert({ParamPart::MlpIn, rd.layer, 0}); break;
        default: break;
      }
    }
    r.parts.assign(parts.begin(), parts.end());
  } else {
    const NodeScores ns = tune_node_scores(current, data, opt.ablation, opt.metric, opt.mlp_heads);
    std::vector<TuneNode> all;
    for (int64_t l = 0; l < c.n_layers; ++l) {
      for (int64_t h = 0; h < c.n_heads; ++h) all.push_back({false, l, h, ns.heads[l][h].item<double>()});
      for (int64_t j = 0; j < opt.mlp_heads; ++j) all.push_back({true, l, j, ns.mlps[l][j].item<double>()});
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const TuneNode& a, const TuneNode& b) { return std::abs(a.score) > std::abs(b.score); });
    all.resize(std::min<size_t>(all.size(), static_cast<size_t>(opt.nodes)));
    r.nodes = all;
    r.parts = parts_of_nodes(c, all);
  }
  r.discovery_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

nlohmann::json round_json(const TuneRound& r) {
  nlohmann::json nodes = nlohmann::json::array(), parts = nlohmann::json::array();
  for (const auto& n : r.nodes) nodes.push_back({n.mlp, n.layer, n.index, n.score});
  for (const auto& p : r.parts) parts.push_back({static_cast<int>(p.kind), p.layer, p.index});
  return {{"round", r.round}, {"nodes", nodes}, {"parts", parts}, {"params", r.params}, {"seconds", r.discovery_seconds}};
}

TuneRound round_from_json(const nlohmann::json& j) {
  TuneRound r;
  r.round = j.at("round");
  for (const auto& n : j.at("nodes")) r.nodes.push_back({n.at(0).get<bool>(), n.at(1), n.at(2), n.at(3)});
  for (const auto& p : j.at("parts"))
    r.parts.push_back({static_cast<ParamPart::Kind>(p.at(0).get<int>()), p.at(1).get<int64_t>(), p.at(2).get<int64_t>()});
  r.params = j.at("params");
  r.discovery_seconds = j.at("seconds");
  return r;
}

}  // namespace

TuneResult circuit_tune(const Model& model, const Batch& train, const TuneOptions& opt) {
  check_options(opt);
  // In a pipeline each stage trains its own layers' weights (the embeddings and final norm, which
  // every stage holds, alike on all); a checkpoint would need every stage's.
  const bool pipeline = dist::stages() > 1;
  if (pipeline && !opt.run.checkpoint.empty())
    fail("circuit-tuning", "checkpoints are not written when the layers are split over pipeline stages yet: run "
                           "without a checkpoint, or data parallel only");
  if (train.size() == 0) fail("circuit-tuning", "the training set is empty");
  if (model.dtype() != DType::F32) fail("circuit-tuning", "training needs fp32 weights (load the model without bf16)");
  const ModelConfig& c = model.config();
  const int64_t N = train.size(), total_steps = opt.rounds * opt.steps_per_round;

  // Which canonical weights may ever be trained (by name: no masks needed to know).
  std::set<std::string> trainable;
  {
    auto add = [&](const std::string& n) {
      if (model.weights().count(n)) trainable.insert(n);
    };
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (const char* n : kPartWeights) add(blk(l, n));
    if (opt.train_embeddings || opt.full)
      for (const char* n : kEmbeddingWeights) add(n);
    if (opt.train_norms || opt.full) {
      for (int64_t l = 0; l < c.n_layers; ++l)
        for (const char* n : kLayerNormWeights) add(blk(l, n));
      for (const char* n : kFinalNormWeights) add(n);
    }
  }
  Trainable tr = make_trainable(model, trainable);
  const size_t NL = tr.leaf.size();
  std::vector<OptimState> st(NL);  // file names: SGD's buffer and AdamW's m as ".a", AdamW's v as ".b"
  std::vector<at::Tensor> ever(NL);  // entries inside some round's circuit
  for (size_t i = 0; i < NL; ++i) ever[i] = at::zeros(tr.leaf[i].sizes(), tr.leaf[i].options().dtype(at::kBool));

  // A leaf of this stage's own layers (not held by the other stages): its sums cross the stages.
  auto own = [&](size_t i) { return pipeline && tr.leaf_name[i].rfind("blk.", 0) == 0; };
  // A count over the leaves: this stage's own ones summed over the stages, the shared ones once.
  auto over_stages = [&](int64_t own_part, int64_t shared_part) {
    at::Tensor t = at::full({1}, static_cast<double>(own_part), at::kDouble);
    dist::sum_over_stages(t, "circuit-tuning's parameter counts");
    return static_cast<int64_t>(t.item<double>()) + shared_part;
  };

  TuneResult res;
  res.params_total = model.n_params();
  if (pipeline) {  // the whole model's: each stage's layers, the shared weights once
    std::set<const void*> seen;
    int64_t layers = 0, shared = 0;
    for (const auto& [k, t] : model.weights())
      if (seen.insert(t.data_ptr()).second) (k.rfind("blk.", 0) == 0 ? layers : shared) += t.numel();
    res.params_total = over_stages(layers, shared);
  }
  const std::string key = opt.run.fingerprint + " | " + options_key(opt);
  int64_t start = 0;
  double seconds_before = 0;
  std::vector<TuneRound> rounds;
  const std::string& ck_path = opt.run.checkpoint;
  if (opt.run.resume && !ck_path.empty() && std::filesystem::exists(ck_path)) {
    const discover::RunCheckpoint ck = discover::open_run_checkpoint(ck_path, kFormat, key, "circuit-tuning");
    const SafetensorsFile& f = ck.file;
    auto meta = [&](const std::string& k) { return ck.meta(k); };
    auto get = [&](const std::string& name, const at::Tensor& like, at::ScalarType dt) {
      const StTensor* t = f.find(name);
      if (!t || t->shape != like.sizes().vec())
        fail(ck_path, "damaged checkpoint: tensor '" + name + "' missing or of another shape");
      const StDType want = dt == at::kFloat ? StDType::F32 : StDType::U8;
      if (t->dtype != want) fail(ck_path, "damaged checkpoint: tensor '" + name + "' of another dtype");
      const at::ScalarType st = dt == at::kFloat ? at::kFloat : at::kByte;
      return at::from_blob(const_cast<uint8_t*>(t->data), t->shape, st)
          .to(like.device(), st, /*non_blocking=*/false, /*copy=*/true);  // one copy, off the mapped file
    };
    try {
      start = std::stoll(meta("step"));
      seconds_before = std::stod(meta("seconds"));
      for (const auto& j : nlohmann::json::parse(meta("rounds"))) rounds.push_back(round_from_json(j));
      for (const auto& row : nlohmann::json::parse(meta("log")))
        res.log.push_back({row.at(0), row.at(1), row.at(2), row.at(3), row.at(4), row.at(5)});
    } catch (const std::exception& e) {
      fail(ck_path, std::string("damaged checkpoint metadata (") + e.what() + ")");
    }
    if (start > total_steps) fail(ck_path, "has more steps than this run asks for");
    for (size_t i = 0; i < NL; ++i) {
      const std::string& n = tr.leaf_name[i];
      tr.leaf[i] = get(n, tr.leaf[i], at::kFloat);
      ever[i] = get(n + ".ever", tr.leaf[i], at::kByte).to(at::kBool);
      if (f.find(n + ".a")) st[i].m = get(n + ".a", tr.leaf[i], at::kFloat);
      if (f.find(n + ".b")) st[i].v = get(n + ".b", tr.leaf[i], at::kFloat);
    }
  }
  auto save = [&](int64_t step, double secs) {
    if (ck_path.empty() || !dist::is_root()) return;  // rank 0 writes
    std::vector<at::Tensor> keep;
    std::vector<StWriteTensor> ts;
    auto add = [&](const std::string& name, const at::Tensor& t) {
      at::Tensor cpy = t.detach().to(at::kCPU).contiguous();  // the writer reads host memory
      if (cpy.scalar_type() == at::kBool) cpy = cpy.to(at::kByte);
      keep.push_back(cpy);
      ts.push_back({name, cpy.scalar_type() == at::kByte ? StDType::U8 : StDType::F32, cpy.sizes().vec(),
                    cpy.data_ptr(), static_cast<uint64_t>(cpy.nbytes())});
    };
    for (size_t i = 0; i < NL; ++i) {
      add(tr.leaf_name[i], tr.leaf[i]);
      add(tr.leaf_name[i] + ".ever", ever[i]);
      if (st[i].m.defined()) add(tr.leaf_name[i] + ".a", st[i].m);
      if (st[i].v.defined()) add(tr.leaf_name[i] + ".b", st[i].v);
    }
    nlohmann::json rj = nlohmann::json::array(), lj = nlohmann::json::array();
    for (const auto& r : rounds) rj.push_back(round_json(r));
    for (const auto& l : res.log) lj.push_back({l.round, l.step, l.loss, l.lr, l.seconds, l.params_trained});
    safetensors_write(ck_path, ts,
                      {{"format", kFormat}, {"run", key}, {"step", std::to_string(step)},
                       {"seconds", std::to_string(secs)}, {"rounds", rj.dump()}, {"log", lj.dump()}});
  };

  const auto t0 = Clock::now();
  CheckpointClock ck_clock(opt.run);
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - t0).count(); };
  std::vector<at::Tensor> masks;  // per leaf, this round (undefined: frozen this round)
  int64_t mask_round = -1;
  int64_t step = start;
  bool stopped = false;
  for (; step < total_steps; ++step) {
    const int64_t round = step / opt.steps_per_round;
    if (round != mask_round) {
      // A new round discovers its circuit; a resumed run reuses the one it recorded.
      if (static_cast<int64_t>(rounds.size()) <= round) {
        if (opt.full || !opt.parts.empty()) {
          TuneRound r;
          r.round = round;
          r.parts = opt.parts;
          rounds.push_back(r);
        } else {
          rounds.push_back(discover_round(model.with_weights(tr.weights(true)), train, opt, round));
        }
      }
      TuneRound& r = rounds[round];
      std::map<std::string, at::Tensor> cm;
      if (opt.full) {
        for (const auto& [name, ref] : tr.ref) cm[name] = at::ones_like(model.weight(name), at::kFloat);
      } else {
        cm = parameter_masks(model, r.parts, opt.mlp_heads, opt.train_embeddings, opt.train_norms);
      }
      masks = leaf_masks(tr, cm);
      r.params = 0;
      int64_t own_params = 0;
      for (size_t i = 0; i < NL; ++i) {
        const bool on = masks[i].defined() && masks[i].any().item<bool>();
        if (!on) masks[i] = at::Tensor();
        else (own(i) ? own_params : r.params) += masks[i].sum().item<int64_t>(), ever[i] |= masks[i].to(at::kBool);
        tr.leaf[i].requires_grad_(on);
      }
      if (pipeline) r.params = over_stages(own_params, r.params);
      mask_round = round;
    }
    const double lr = opt.lr * (opt.warmup_steps > 0 ? std::min(1.0, static_cast<double>(step + 1) / opt.warmup_steps) : 1.0);
    at::Tensor rows = batch_index(N, std::min(opt.batch_size, N), step, opt.seed);
    double loss_all = 0;  // the step's loss over every rank's share
    at::Tensor loss;
    if (!dist::active()) {
      const Batch b = train.select(rows);
      loss = answer_loss(model.with_weights(tr.weights(false)).forward(b.clean), b);
      loss.backward();
    } else {
      // Across ranks: each takes a contiguous share of the step's examples (one with weight 0
      // when its share is empty); the trained leaves' gradients and the loss, each weighted by its
      // share, are summed (data parallel, as DDP).
      const int64_t n_step = rows.size(0);
      const dist::Range share = dist::my_range(n_step);
      const double w = static_cast<double>(share.size()) / static_cast<double>(n_step);
      const Batch b = train.select(share.size() > 0 ? rows.narrow(0, share.begin, share.size()) : rows.narrow(0, 0, 1));
      loss = answer_loss(model.with_weights(tr.weights(false)).forward(b.clean), b) * w;
      loss.backward();
      std::vector<at::Tensor> trained;
      std::vector<uint8_t> local;  // in a pipeline: this stage's own layers' leaves (not summed over stages)
      for (size_t i = 0; i < NL; ++i)
        if (masks[i].defined()) trained.push_back(tr.leaf[i]), local.push_back(own(i));
      loss_all = dist::all_reduce_gradients(trained, loss.detach().item<double>(), "circuit-tuning's gradients", &local);
    }
    {
      at::NoGradGuard ng;
      std::vector<at::Tensor> g(NL);
      double sq = 0, sq_own = 0;  // in a pipeline: the shared leaves' and this stage's own
      for (size_t i = 0; i < NL; ++i) {
        if (!masks[i].defined()) continue;
        const at::Tensor& gr = tr.leaf[i].grad();
        g[i] = gr.defined() ? gr * masks[i] : at::zeros_like(tr.leaf[i]);
        if (opt.max_grad_norm > 0) (own(i) ? sq_own : sq) += g[i].pow(2).sum().item<double>();
      }
      if (pipeline && opt.max_grad_norm > 0) {  // the whole model's gradient norm
        at::Tensor t = at::full({1}, sq_own, at::kDouble);
        dist::sum_over_stages(t, "circuit-tuning's gradient norm");
        sq += t.item<double>();
      }
      const double scale = opt.max_grad_norm > 0 && std::sqrt(sq) > opt.max_grad_norm
                               ? opt.max_grad_norm / (std::sqrt(sq) + 1e-6) : 1.0;
      for (size_t i = 0; i < NL; ++i) {
        if (!masks[i].defined()) continue;
        at::Tensor p = tr.leaf[i].detach();
        const at::Tensor gi = scale == 1.0 ? g[i] : g[i] * scale;
        OptimOptions oo;  // torch.optim.SGD (dampening 0, no Nesterov) / AdamW (0.9, 0.999, 1e-8)
        oo.kind = opt.optimizer == "sgd" ? OptimKind::Sgd : OptimKind::AdamW;
        oo.lr = lr, oo.weight_decay = opt.weight_decay, oo.momentum = opt.momentum;
        st[i].t = step;  // AdamW's bias correction counts every step taken, as torch's (frozen rounds included)
        optim_step(p, gi, st[i], oo, masks[i].to(at::kBool));
      }
    }
    for (auto& l : tr.leaf) l.mutable_grad() = at::Tensor();
    TuneLog row;
    row.round = round, row.step = step + 1, row.loss = dist::active() ? loss_all : loss.item<double>(), row.lr = lr,
    row.seconds = elapsed();
    row.params_trained = rounds[round].params;
    res.log.push_back(row);
    opt.run.report({"steps", row.step, total_steps,
                    {{"round", static_cast<double>(round + 1)}, {"loss", row.loss}, {"lr", row.lr},
                     {"parameters trained", static_cast<double>(row.params_trained)}}});
    if (dist::any(opt.run.stopping(), "circuit-tuning's stop request")) {
      stopped = true;
      ++step;
      break;
    }
    if (step + 1 < total_steps && ck_clock.due()) {
      save(step + 1, elapsed());
      ck_clock.saved();
    }
  }
  res.steps_done = step;
  res.complete = !stopped && step >= total_steps;
  res.seconds = elapsed();
  save(step, res.seconds);
  int64_t own_updated = 0;
  for (size_t i = 0; i < NL; ++i)
    tr.leaf[i].requires_grad_(false), (own(i) ? own_updated : res.params_updated) += ever[i].sum().item<int64_t>();
  if (pipeline) res.params_updated = over_stages(own_updated, res.params_updated);
  res.weights = tr.weights(true);
  res.rounds = rounds;
  return res;
}

}  // namespace edgewise
