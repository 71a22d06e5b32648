// Loading: a resolved ModelSource (HF directory with config.json + safetensors shards, or one
// GGUF file) into canonical weights. Every tensor an architecture's table names is looked up,
// its checkpoint shape asserted (errors name the file, the tensor, expected and found shapes),
// then transposed / split / un-permuted into torch [out, in] order. Extra checkpoint tensors
// are reported as a load note, not an error.
// fp32 safetensors tensors that need no transform are zero-copy views of the read-only mmap:
// weights must never be written in place.
// Not here: pickled .bin checkpoints (hf.cpp refuses them), the tokenizer's own parsing.
#include <set>

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "edgewise/safetensors.h"
#include "internal.h"

namespace edgewise {

using namespace model_detail;

namespace {

// Positions for which rotary tables are precomputed at load (longer inputs fail in forward).
constexpr int64_t kMaxRopeCache = 32768;

std::vector<std::string> split_alternatives(const std::string& s) {
  std::vector<std::string> r;
  size_t b = 0;
  for (size_t p; (p = s.find('|', b)) != std::string::npos; b = p + 1) r.push_back(s.substr(b, p - b));
  r.push_back(s.substr(b));
  return r;
}

// A checkpoint seen as named tensors in torch order, whatever the file format.
class Checkpoint {
 public:
  virtual ~Checkpoint() = default;
  virtual bool has(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  /// The file holding the tensor (for messages).
  virtual std::string file_of(const std::string& name) const = 0;
  /// The tensor, floating point, torch order; may be a read-only view of the file.
  virtual at::Tensor read(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  /// What to name when a tensor is missing (the file, or the shard list).
  virtual std::string where() const = 0;
};

class SafetensorsCheckpoint : public Checkpoint {
 public:
  explicit SafetensorsCheckpoint(const std::vector<std::string>& files) {
    for (const auto& p : files) {
      auto f = std::make_shared<SafetensorsFile>(SafetensorsFile::open(p));
      for (const auto& [name, t] : f->tensors()) {
        auto [it, fresh] = index_.emplace(name, files_.size());
        if (!fresh)
          fail(p, "tensor '" + name + "' also appears in " + files_[it->second]->path());
      }
      files_.push_back(std::move(f));
    }
    where_ = files.size() == 1 ? files[0] : files[0] + " (+" + std::to_string(files.size() - 1) + " shards)";
  }
  bool has(const std::string& n) const override { return index_.count(n) > 0; }
  std::vector<int64_t> shape(const std::string& n) const override { return tensor(n).shape; }
  std::string file_of(const std::string& n) const override { return files_[index_.at(n)]->path(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> r;
    for (const auto& [n, i] : index_) r.push_back(n);
    return r;
  }
  std::string where() const override { return where_; }
  /// Drops the resident pages of `t` when it is a view of one of the files (nothing otherwise).
  void drop_pages(const at::Tensor& t) const {
    for (const auto& f : files_) f->drop_pages(t.data_ptr(), t.nbytes());
  }

  at::Tensor read(const std::string& n) const override {
    const auto& file = files_[index_.at(n)];
    const StTensor& t = tensor(n);
    at::ScalarType st;
    switch (t.dtype) {
      case StDType::F32: st = at::kFloat; break;
      case StDType::F16: st = at::kHalf; break;
      case StDType::BF16: st = at::kBFloat16; break;
      case StDType::F64: st = at::kDouble; break;
      default:
        fail(file->path() + ": tensor '" + n + "'",
             std::string("dtype ") + st_dtype_name(t.dtype) + " is not a floating-point type");
    }
    if (t.nbytes == 0) return at::empty(t.shape, at::TensorOptions().dtype(st));
    auto keep = file;  // the mapping lives as long as any tensor viewing it
    at::Tensor v = at::from_blob(const_cast<uint8_t*>(t.data), t.shape, [keep](void*) {},
                                 at::TensorOptions().dtype(st));
    // Views need element alignment; the format does not promise it.
    if (reinterpret_cast<uintptr_t>(t.data) % st_dtype_size(t.dtype) != 0) v = v.clone();
    return v;
  }

 private:
  const StTensor& tensor(const std::string& n) const { return *files_[index_.at(n)]->find(n); }
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> index_;
  std::string where_;
};

class GgufCheckpoint : public Checkpoint {
 public:
  explicit GgufCheckpoint(std::shared_ptr<GgufFile> f) : f_(std::move(f)) {}
  bool has(const std::string& n) const override { return f_->find_tensor(n) != nullptr; }
  std::vector<int64_t> shape(const std::string& n) const override {
    auto s = f_->find_tensor(n)->shape;  // ggml order: ne[0] fastest
    return {s.rbegin(), s.rend()};
  }
  std::string file_of(const std::string&) const override { return f_->path(); }
  std::string where() const override { return f_->path(); }
  std::vector<std::string> names() const override {
    std::vector<std::string> r;
    for (const auto& t : f_->tensors()) r.push_back(t.name);
    return r;
  }
  at::Tensor read(const std::string& n) const override {
    const GgufTensorInfo& t = *f_->find_tensor(n);
    const auto sh = shape(n);
    if (t.type == static_cast<uint32_t>(GgmlType::F32) &&
        reinterpret_cast<uintptr_t>(t.data) % 4 == 0) {
      auto keep = f_;
      return at::from_blob(const_cast<uint8_t*>(t.data), sh, [keep](void*) {},
                           at::TensorOptions().dtype(at::kFloat));
    }
    auto* v = new std::vector<float>(f_->dequantize(t));
    return at::from_blob(v->data(), sh, [v](void*) { delete v; }, at::TensorOptions().dtype(at::kFloat));
  }

 private:
  std::shared_ptr<GgufFile> f_;
};

// Tensors already in memory under their checkpoint names (a transformers model's state_dict,
// handed over from Python): read() returns the tensor itself, so the weights are shared.
class TensorMapCheckpoint : public Checkpoint {
 public:
  TensorMapCheckpoint(const std::map<std::string, at::Tensor>& t, std::string where)
      : t_(t), where_(std::move(where)) {}
  bool has(const std::string& n) const override { return t_.count(n) > 0; }
  std::vector<int64_t> shape(const std::string& n) const override { return t_.at(n).sizes().vec(); }
  std::string file_of(const std::string&) const override { return where_; }
  std::string where() const override { return where_; }
  std::vector<std::string> names() const override {
    std::vector<std::string> r;
    for (const auto& [n, t] : t_) r.push_back(n);
    return r;
  }
  at::Tensor read(const std::string& n) const override {
    const at::Tensor& t = t_.at(n);
    if (!at::isFloatingType(t.scalar_type()))
      fail(where_ + ": tensor '" + n + "'", std::string("dtype ") + c10::toString(t.scalar_type()) +
                                                 " is not a floating-point type");
    return t.detach();
  }

 private:
  const std::map<std::string, at::Tensor>& t_;
  std::string where_;
};

// llama.cpp's converter (convert_hf_to_gguf.py LlamaModel.permute) reorders the rows of each
// Q/K head from HF's [first half | second half] rotary layout into interleaved pairs:
//   w.reshape(n_head, 2, rows/n_head/2, *rest).swapaxes(1, 2).reshape(w.shape)
// The inverse (transformers' LlamaTensorProcessor._reverse_permute_weights):
//   w.reshape(n_head, rows/n_head/2, 2, *rest).swapaxes(1, 2).reshape(w.shape)
at::Tensor unpermute_rotary(const at::Tensor& w, int64_t n_head) {
  std::vector<int64_t> s = {n_head, w.size(0) / n_head / 2, 2};
  for (int64_t d = 1; d < w.dim(); ++d) s.push_back(w.size(d));
  return w.reshape(s).transpose(1, 2).reshape(w.sizes());
}

struct LoadResult {
  std::map<std::string, at::Tensor> weights;
  std::vector<std::string> notes;
};

// Applies an architecture table to a checkpoint.
// `share`: keep each tensor as the checkpoint gives it where the dtype matches (views, not
// contiguous copies: a transposed GPT-2 Conv1D weight stays a strided view).
// Layers outside `held` [first, end) are checked (names, shapes) but not read.
LoadResult load_weights(const Checkpoint& ck, const std::vector<ArchRow>& rows,
                        const ModelConfig& cfg, at::ScalarType dtype, bool gguf, bool share = false,
                        std::pair<int64_t, int64_t> held = {0, INT64_MAX}) {
  LoadResult r;
  std::set<std::string> used;
  bool tied_shared = false;
  const int64_t Q = cfg.n_heads * cfg.d_head, KV = cfg.n_kv_heads * cfg.d_head;

  for (CTensor ct : canonical_used(cfg)) {
    const ArchRow* row = nullptr;
    for (const auto& rr : rows)
      if (rr.tensor == ct) row = &rr;
    if (!row)
      fail(ck.where(), std::string("architecture table for ") + arch_name(cfg.arch) +
                           " has no row for canonical tensor '" + canonical_name(ct, 0) + "'");
    const int64_t n = canonical_per_layer(ct) ? cfg.n_layers : 1;
    const std::vector<int64_t> want = canonical_shape(ct, cfg);
    for (int64_t l = 0; l < n; ++l) {
      const std::string cname = canonical_name(ct, l);
      std::string name;
      const auto alts = split_alternatives(expand_layer(row->checkpoint, l));
      for (const auto& a : alts)
        if (ck.has(a)) {
          name = a;
          break;
        }
      if (row->flags & kTied) {
        if (cfg.tied_embeddings) {
          if (!name.empty()) {
            used.insert(name);
            r.notes.push_back("'" + name + "' present but the config ties the output to the "
                              "token embedding: using token_embd.weight (as transformers does)");
          }
          tied_shared = true;
          continue;
        }
      }
      if (name.empty()) {
        std::string what = "missing tensor '" + alts[0] + "'";
        if (alts.size() > 1) what += " (or '" + alts[1] + "')";
        what += " (canonical '" + cname + "', expected shape " + shape_str(want) + ")";
        if (row->flags & kTied) what += "; the config does not tie the output to the token embedding";
        fail(ck.where(), what);
      }
      used.insert(name);

      // The shape the checkpoint must have, before our transforms.
      std::vector<int64_t> expect = want;
      int64_t part_begin = 0;
      if (row->flags & (kFusedQkv | kFusedQkvHeads)) {
        const bool bias = want.size() == 1;
        expect = bias ? std::vector<int64_t>{Q + 2 * KV} : std::vector<int64_t>{Q + 2 * KV, cfg.d_model};
        if (ct == CTensor::AttnK || ct == CTensor::AttnKB) part_begin = Q;
        if (ct == CTensor::AttnV || ct == CTensor::AttnVB) part_begin = Q + KV;
      }
      if ((row->flags & kTransposed) && expect.size() == 2) std::swap(expect[0], expect[1]);
      const auto found = ck.shape(name);
      if (found != expect) {
        std::string what = "tensor '" + name + "': expected shape " + shape_str(expect) +
                           ", found " + shape_str(found);
        if (gguf) what += " (torch order; ggml lists it reversed)";
        fail(ck.file_of(name), what);
      }
      if (canonical_per_layer(ct) && (l < held.first || l >= held.second)) continue;  // another stage's

      at::Tensor w = ck.read(name);
      if ((row->flags & kTransposed) && w.dim() == 2) w = w.t();
      if (row->flags & kFusedQkv) w = w.narrow(0, part_begin, want[0]);
      if (row->flags & kFusedQkvHeads) {  // [H, 3, Dh, ...]: part q = 0, k = 1, v = 2 of each head
        std::vector<int64_t> grouped = {cfg.n_heads, 3, cfg.d_head};
        if (w.dim() == 2) grouped.push_back(w.size(1));
        w = w.reshape(grouped).select(1, part_begin / Q).reshape(want);
      }
      if (row->flags & kRotaryPermuted) {
        const bool is_q = ct == CTensor::AttnQ || ct == CTensor::AttnQB;
        w = unpermute_rotary(w, is_q ? cfg.n_heads : cfg.n_kv_heads);
      }
      if (row->flags & kPlusOne) w = w.to(at::kFloat) + 1;  // the multiplier, as the model computes it (fp32)
      w = share ? w.to(dtype) : w.to(dtype).contiguous();
      r.weights[cname] = w;
    }
  }
  if (tied_shared) {
    r.weights["output.weight"] = r.weights.at("token_embd.weight");
    r.notes.push_back("output.weight tied to token_embd.weight");
  }

  // Extras: reported, not fatal (GPT-2's attn.bias mask buffers, rotary inv_freq, ...).
  std::vector<std::string> extra;
  for (const auto& n : ck.names())
    if (!used.count(n) && n != "rope_freqs.weight") extra.push_back(n);
  if (!extra.empty()) {
    std::string s = "ignored " + std::to_string(extra.size()) + " checkpoint tensor(s) the model does not use:";
    for (size_t i = 0; i < extra.size() && i < 4; ++i) s += " " + extra[i];
    if (extra.size() > 4) s += " ...";
    r.notes.push_back(s);
  }
  return r;
}

// Packs q/k/v (and their biases) and gate/up of each layer into one buffer each, so that the
// forward pass can run one matmul where the checkpoint has two or three (forward.cpp finds the
// packed buffer with fused_rows()). The canonical weights stay separate tensors: contiguous row
// views into the packed buffer.
// Above this many bytes of gate/up weights, a safetensors model's gate/up are not packed.
constexpr int64_t kPackLimit = int64_t(2) << 30;

// `copied(t)`: called with each part once it is copied into its group (a mapped file's pages
// can then be dropped).
void pack_fused(std::map<std::string, at::Tensor>& w, const ModelConfig& c, bool gate_up = true,
                const std::function<void(const at::Tensor&)>& copied = {}) {
  for (const auto& names : fused_weight_groups(c)) {
    if (!gate_up && names[0].find("ffn_gate") != std::string::npos) continue;
    if (!w.count(names[0])) continue;  // a layer another pipeline stage holds
    std::vector<at::Tensor> parts;
    for (const auto& n : names) {
      auto it = w.find(n);
      if (it == w.end()) fail("pack", "missing weight '" + n + "'");  // fused_weight_groups is wrong
      parts.push_back(it->second);
    }
    at::Tensor all = at::cat(parts, 0);
    if (copied)
      for (const at::Tensor& p : parts) copied(p);
    int64_t row = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      const int64_t n = parts[i].size(0);
      w[names[i]] = all.narrow(0, row, n);
      row += n;
    }
  }
}

// The layers a load keeps: LoadOptions::layers, else under a pipeline this rank's stage's.
std::pair<int64_t, int64_t> layers_to_hold(const LoadOptions& opt, const ModelConfig& c, const std::string& where) {
  const int64_t L = c.n_layers;
  if (opt.layers) {
    const auto [a, b] = *opt.layers;
    if (a < 0 || b > L || a >= b)
      fail(where, "layers [" + std::to_string(a) + ", " + std::to_string(b) + ") to hold are not a non-empty range of the model's " +
                      std::to_string(L) + " layers");
    return *opt.layers;
  }
  if (dist::stages() == 1) return {0, L};
  if (L < dist::stages())
    fail(where, std::to_string(L) + " layers cannot be split over " + std::to_string(dist::stages()) + " pipeline stages");
  const dist::Range r = dist::stage_range(dist::stage(), L);
  return {r.begin, r.end};
}

std::string dtype_name(DType d) { return d == DType::BF16 ? "bf16" : "fp32"; }

// The rotary tables for positions up to kMaxRopeCache, on `dev` in `st`.
void rope_on(const ModelConfig& c, const at::Tensor& freq_factors, c10::Device dev, at::ScalarType st,
             at::Tensor* cos, at::Tensor* sin) {
  rope_tables(rope_inv_freq(c, freq_factors), std::min(c.n_ctx, kMaxRopeCache), cos, sin);
  *cos = cos->to(dev, st);
  *sin = sin->to(dev, st);
}

// A sliding-window layer's own rotary tables (Gemma 3: base rope_theta_local, no scaling, as
// transformers' sliding_attention rope parameters); undefined when no layer slides.
void local_rope_on(const ModelConfig& c, c10::Device dev, at::ScalarType st, at::Tensor* cos, at::Tensor* sin) {
  if (!c.rope || c.block.sliding.empty()) return;
  ModelConfig lc = c;
  lc.rope_theta = c.block.rope_theta_local;
  lc.rope_scaling = RopeScaling{};
  rope_on(lc, at::Tensor(), dev, st, cos, sin);
}

// The source's tokenizer (the GGUF's vocabulary, tokenizer.json, or vocab.json + merges.txt),
// with the config's BOS / EOS where the tokenizer names none. None found: an error when
// `required`, else null (a model without a tokenizer).
std::shared_ptr<Tokenizer> tokenizer_of(const ModelSource& src, const GgufFile* gguf, const ModelConfig& c,
                                        bool required) {
  // A Tracr model's vocabulary is in its config.json: its input words and output space.
  if (c.arch == Arch::Tracr) return std::make_shared<Tokenizer>(Tokenizer::from_tracr_config(src.config));
  std::optional<Tokenizer> tok;
  if (gguf)
    tok.emplace(Tokenizer::from_gguf(*gguf));
  else if (!src.tokenizer_json.empty())
    tok.emplace(Tokenizer::from_tokenizer_json(src.tokenizer_json));
  else if (!src.vocab_json.empty() && !src.merges_txt.empty())
    tok.emplace(Tokenizer::from_vocab_merges(src.vocab_json, src.merges_txt));
  else if (required)
    fail(src.dir, "no tokenizer found (expected tokenizer.json, or vocab.json + merges.txt)");
  else
    return nullptr;
  if (!tok->bos_id() && c.bos_token_id) tok->set_bos_id(c.bos_token_id);
  if (!tok->eos_id() && c.eos_token_id) tok->set_eos_id(c.eos_token_id);
  return std::make_shared<Tokenizer>(std::move(*tok));
}

}  // namespace

std::vector<std::vector<std::string>> fused_weight_groups(const ModelConfig& c) {
  std::vector<std::vector<std::string>> r;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    r.push_back({p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"});
    if (c.qkv_bias) r.push_back({p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias"});
    if (c.gated_mlp) {
      r.push_back({p + "ffn_gate.weight", p + "ffn_up.weight"});
      if (c.mlp_bias) r.push_back({p + "ffn_gate.bias", p + "ffn_up.bias"});
    }
  }
  return r;
}

Model Model::with_weights(std::map<std::string, at::Tensor> w) const {
  const std::string where = src_.spec.empty() ? src_.dir : src_.spec;
  for (const auto& [name, t] : weights_) {
    auto it = w.find(name);
    if (it == w.end()) fail(where, "replacement weights lack '" + name + "'");
    if (!it->second.defined() || it->second.sizes() != t.sizes())
      fail(where, "replacement weight '" + name + "' has shape " +
                      (it->second.defined() ? shape_str(it->second.sizes().vec()) : std::string("none")) +
                      ", expected " + shape_str(t.sizes().vec()));
    if (it->second.scalar_type() != t.scalar_type())
      fail(where, "replacement weight '" + name + "' has another dtype than the model's");
  }
  for (const auto& [name, t] : w)
    if (!weights_.count(name)) fail(where, "replacement weights have an unknown tensor '" + name + "'");
  Model m = *this;
  m.weights_ = std::move(w);
  return m;
}

Model Model::load(const std::string& spec, const LoadOptions& opt) {
  return load(resolve_model(spec), opt);
}

Model Model::load(const ModelSource& src, const LoadOptions& opt) {
  Model m;
  m.src_ = src;
  m.dtype_ = opt.dtype;
  const at::ScalarType st = opt.dtype == DType::BF16 ? at::kBFloat16 : at::kFloat;
  at::Tensor freq_factors;
  std::shared_ptr<GgufFile> gguf;
  std::unique_ptr<SafetensorsCheckpoint> st_ck;  // a safetensors source's files

  if (src.kind == ModelSource::Kind::Gguf) {
    gguf = std::make_shared<GgufFile>(GgufFile::open(src.gguf));
    m.cfg_ = config_from_gguf(*gguf);
    m.held_ = layers_to_hold(opt, m.cfg_, src.gguf);
    GgufCheckpoint ck(gguf);
    auto r = load_weights(ck, arch_rows_gguf(m.cfg_.arch), m.cfg_, st, true, false, m.held_);
    m.weights_ = std::move(r.weights);
    m.notes_ = std::move(r.notes);
    std::map<std::string, int> types;
    for (const auto& t : gguf->tensors()) types[ggml_type_name(t.type)]++;
    std::string s = "GGUF tensor types:";
    for (const auto& [k, v] : types) s += " " + k + " x" + std::to_string(v);
    m.notes_.insert(m.notes_.begin(), s + "; dequantised to " + dtype_name(opt.dtype));
    if (m.cfg_.arch == Arch::Llama)
      m.notes_.push_back("attn_q / attn_k rows un-permuted from llama.cpp's rotary layout");
    if (ck.has("rope_freqs.weight")) {
      freq_factors = ck.read("rope_freqs.weight").to(at::kFloat).contiguous();
      if (freq_factors.numel() != m.cfg_.d_head / 2)
        fail(src.gguf, "tensor 'rope_freqs.weight': expected " + std::to_string(m.cfg_.d_head / 2) +
                           " elements, found " + std::to_string(freq_factors.numel()));
      m.notes_.push_back("rotary frequencies divided by rope_freqs.weight");
    }
  } else {
    if (src.config.empty()) fail(src.dir, "no config.json in the model directory");
    if (src.weights.empty()) fail(src.dir, "no .safetensors weights in the model directory");
    m.cfg_ = config_from_hf_json(src.config);
    m.held_ = layers_to_hold(opt, m.cfg_, src.dir);
    st_ck = std::make_unique<SafetensorsCheckpoint>(src.weights);
    const SafetensorsCheckpoint& ck = *st_ck;
    auto r = load_weights(ck, arch_rows_hf(m.cfg_.arch), m.cfg_, st, false, false, m.held_);
    m.weights_ = std::move(r.weights);
    m.notes_ = std::move(r.notes);
    if (src.weights.size() > 1)
      m.notes_.insert(m.notes_.begin(), "weights from " + std::to_string(src.weights.size()) + " shards");
  }

  const c10::Device dev = parse_device(opt.device);
  if (!dev.is_cpu()) {
    // One copy per tensor: a tied output is the embedding itself and stays one tensor.
    std::map<const void*, at::Tensor> moved;
    for (auto& [name, t] : m.weights_) {
      auto [it, fresh] = moved.try_emplace(t.unsafeGetTensorImpl());
      if (fresh) it->second = t.to(dev);
      t = it->second;
    }
  }
  // Packing copies each layer's q/k/v and gate/up into one buffer (one matmul each). Weights
  // mapped from safetensors would then sit in memory twice (the mapping and the copy): past
  // kPackLimit of gate/up weights (an 8B model's are 7.5 GB in bf16) those stay views of the
  // file, two matmuls; q/k/v (a fifth of that) are still packed, since the patched forward's
  // per-reader projections read them as one matrix.
  if (src.kind == ModelSource::Kind::Gguf || !dev.is_cpu()) {
    pack_fused(m.weights_, m.cfg_);
  } else {
    int64_t bytes = 0;
    for (const auto& names : fused_weight_groups(m.cfg_))
      if (names[0].find("ffn_gate") != std::string::npos)
        for (const auto& n : names)
          if (m.weights_.count(n)) bytes += static_cast<int64_t>(m.weights_.at(n).nbytes());
    const bool gate_up = bytes <= kPackLimit;
    // A part mapped from the file and now copied is read no more: its pages leave resident memory
    // (an 8B model's q/k/v: 1.6 GB that would otherwise count twice).
    pack_fused(m.weights_, m.cfg_, gate_up, [&](const at::Tensor& t) { st_ck->drop_pages(t); });
    if (!gate_up)
      m.notes_.push_back("gate/up left as views of the mapped file (packing them would copy " +
                         format_bytes(static_cast<double>(bytes)) + ")");
  }

  if (m.cfg_.rope) rope_on(m.cfg_, freq_factors, dev, st, &m.rope_cos_, &m.rope_sin_);
  local_rope_on(m.cfg_, dev, st, &m.rope_cos_local_, &m.rope_sin_local_);
  if (opt.load_tokenizer) m.tokenizer_ = tokenizer_of(src, gguf.get(), m.cfg_, true);
  if (m.held_ != std::pair<int64_t, int64_t>{0, m.cfg_.n_layers})
    m.notes_.push_back("holds layers " + std::to_string(m.held_.first) + " to " + std::to_string(m.held_.second - 1) +
                       " of " + std::to_string(m.cfg_.n_layers) + " (a pipeline stage)");
  return m;
}

Model Model::from_tensors(const ModelSource& src, const std::map<std::string, at::Tensor>& tensors,
                          const LoadOptions& opt) {
  const std::string where = src.spec.empty() ? "tensors" : src.spec;
  if (src.config.empty()) fail(where, "no config.json given for the tensors");
  if (tensors.empty()) fail(where, "no tensors given");
  const c10::Device dev = tensors.begin()->second.device();
  for (const auto& [n, t] : tensors) {
    if (!t.defined()) fail(where, "tensor '" + n + "' is undefined");
    if (t.device() != dev)
      fail(where, "tensor '" + n + "' is on " + t.device().str() + ", '" + tensors.begin()->first + "' on " +
                      dev.str() + ": the weights must be on one device");
  }
  Model m;
  m.src_ = src;
  m.dtype_ = opt.dtype;
  const at::ScalarType st = opt.dtype == DType::BF16 ? at::kBFloat16 : at::kFloat;
  m.cfg_ = config_from_hf_json(src.config);
  m.held_ = layers_to_hold(opt, m.cfg_, where);
  TensorMapCheckpoint ck(tensors, where);
  auto r = load_weights(ck, arch_rows_hf(m.cfg_.arch), m.cfg_, st, false, true, m.held_);
  m.weights_ = std::move(r.weights);
  m.notes_ = std::move(r.notes);
  // Which canonical weights share storage with a given tensor (no copy made) and which had to be
  // converted (another dtype than the compute dtype).
  std::set<const void*> given;
  for (const auto& [n, t] : tensors) given.insert(t.storage().data());
  int64_t shared = 0, copied = 0;
  for (const auto& [n, t] : m.weights_) (given.count(t.storage().data()) ? shared : copied)++;
  std::string note = "weights shared with the given tensors: " + std::to_string(shared) + " of " +
                     std::to_string(m.weights_.size());
  if (copied) note += " (" + std::to_string(copied) + " converted to " + dtype_name(opt.dtype) + ": a copy)";
  m.notes_.insert(m.notes_.begin(), note);
  if (m.cfg_.rope) rope_on(m.cfg_, at::Tensor(), dev, st, &m.rope_cos_, &m.rope_sin_);
  local_rope_on(m.cfg_, dev, st, &m.rope_cos_local_, &m.rope_sin_local_);
  if (opt.load_tokenizer) m.tokenizer_ = tokenizer_of(src, nullptr, m.cfg_, false);
  return m;
}

c10::Device parse_device(const std::string& s) {
  const bool gpu = at::hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0;
  if (s == "auto") return gpu ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  std::optional<c10::Device> d;
  try {
    d.emplace(s);
  } catch (const std::exception&) {
  }
  if (!d || (!d->is_cpu() && !d->is_cuda()))
    fail("device", "unknown device '" + s + "' (expected auto, cpu, cuda or cuda:N)");
  if (d->is_cpu()) return *d;
  if (!at::hasCUDA())
    fail("device", "'" + s + "' asked for, but this libtorch was built without CUDA (use cpu or auto)");
  const int64_t n = at::detail::getCUDAHooks().deviceCount();
  if (n == 0) fail("device", "'" + s + "' asked for, but no GPU is visible (use cpu or auto)");
  if (d->has_index() && d->index() >= n)
    fail("device", "'" + s + "' asked for, but only " + std::to_string(n) + " GPU(s) are visible");
  return d->has_index() ? *d : c10::Device(c10::kCUDA, 0);
}

c10::Device Model::device() const {
  auto it = weights_.find("token_embd.weight");
  return it == weights_.end() ? c10::Device(c10::kCPU) : it->second.device();
}

const Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) fail(src_.spec.empty() ? src_.dir : src_.spec, "the model was loaded without its tokenizer");
  return *tokenizer_;
}

const at::Tensor& Model::weight(const std::string& canonical) const {
  auto it = weights_.find(canonical);
  if (it == weights_.end())
    fail(src_.dir, "model has no weight '" + canonical + "' (" + arch_name(cfg_.arch) + ")");
  return it->second;
}

Model Model::gathered() const {
  if (dist::stages() == 1) return *this;
  const int64_t L = cfg_.n_layers;
  const auto [h0, h1] = held_;
  // A layer's weights by suffix ("attn_q.weight"), from this stage's first layer: every layer has
  // the same ones (the same order on every stage).
  const std::string p0 = "blk." + std::to_string(h0) + ".";
  std::vector<std::pair<std::string, at::Tensor>> like;
  for (const auto& [k, t] : weights_)
    if (k.rfind(p0, 0) == 0) like.push_back({k.substr(p0.size()), t});
  Model m = *this;
  for (int p = 0; p < dist::stages(); ++p) {
    const dist::Range r = dist::stage_range(p, L);
    for (int64_t l = r.begin; l < r.end; ++l)
      for (const auto& [suffix, t0] : like) {
        const std::string name = "blk." + std::to_string(l) + "." + suffix;
        const bool mine = l >= h0 && l < h1;
        at::Tensor t = mine ? weights_.at(name).contiguous() : at::empty(t0.sizes(), t0.options());
        dist::broadcast_from_stage(t, p, "the layers' weights");
        m.weights_[name] = t;
      }
  }
  m.held_ = {0, L};
  return m;
}

int64_t Model::n_params() const {
  std::set<const void*> seen;  // a tied output shares the embedding's storage: count it once
  int64_t n = 0;
  for (const auto& [k, w] : weights_)
    if (seen.insert(w.data_ptr()).second) n += w.numel();
  return n;
}

}  // namespace edgewise
