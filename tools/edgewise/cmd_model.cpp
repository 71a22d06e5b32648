// Sub-commands that look at a model: info, run (next-token table), generate (greedy), tokenize.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "edgewise/error.h"
#include "edgewise/generate.h"
#include "edgewise/graph.h"
#include "edgewise/model.h"

namespace edgewise::cli {

namespace {

void apply_threads(const ModelArgs& a) {
  if (a.threads > 0) at::set_num_threads(a.threads);
}

// Printable form of a token's text: control characters escaped, so tables stay one line.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string quoted(const std::string& s) { return "'" + printable(s) + "'"; }

// Left-aligns s in `width` columns counting UTF-8 code points, not bytes (printf's %-24s counts
// bytes, which misaligns tables of multi-byte tokens such as 'Ġ').
std::string pad(const std::string& s, size_t width) {
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  return cols >= width ? s : s + std::string(width - cols, ' ');
}

std::vector<int32_t> encode_prompt(const Model& m, const std::string& prompt) {
  auto ids = m.tokenizer().encode_for_model(prompt);
  if (ids.empty()) fail("--prompt", "the prompt is empty after tokenization");
  if (ids.size() > static_cast<size_t>(m.config().n_ctx))
    fail("--prompt", "prompt has " + std::to_string(ids.size()) + " tokens; the model's context is " +
                         std::to_string(m.config().n_ctx));
  return ids;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* norm_name(Norm n) { return n == Norm::LayerNorm ? "LayerNorm" : n == Norm::RMSNorm ? "RMSNorm" : "none"; }
const char* act_name(Act a) {
  switch (a) {
    case Act::GeluNew: return "gelu_new (tanh)";
    case Act::Gelu: return "gelu";
    case Act::Silu: return "silu";
    case Act::Relu: return "relu";
  }
  return "?";
}

void cmd_info(const ModelArgs& a) {
  apply_threads(a);
  auto t0 = std::chrono::steady_clock::now();
  // A directory without tokenizer files is still worth describing: load the tokenizer only
  // when there is one.
  ModelSource src = resolve_model(a.model);
  bool has_tok = src.kind == ModelSource::Kind::Gguf || !src.tokenizer_json.empty() ||
                 (!src.vocab_json.empty() && !src.merges_txt.empty());
  Model m = Model::load(src, load_options(a, has_tok));
  // A Tracr model's vocabulary is in its config.json (known once the config is read): reload.
  if (!has_tok && m.config().arch == Arch::Tracr) m = Model::load(src, load_options(a, true));
  double load_s = seconds_since(t0);
  const auto& c = m.config();
  const auto& s = m.source();
  std::printf("model\n");
  std::printf("  source        %s\n", s.origin.c_str());
  if (s.kind == ModelSource::Kind::Gguf) {
    std::printf("  file          %s (GGUF)\n", s.gguf.c_str());
  } else {
    std::printf("  config        %s\n", s.config.c_str());
    for (const auto& w : s.weights) std::printf("  weights       %s\n", w.c_str());
  }
  std::printf("  architecture  %s (model_type %s)\n", arch_name(c.arch), c.hf_model_type.c_str());
  std::printf("  parameters    %lld (%.1fM)\n", (long long)m.n_params(), m.n_params() / 1e6);
  std::printf("  dtype         %s\n", m.dtype() == DType::BF16 ? "bf16" : "f32");
  std::printf("  device        %s\n", m.device().str().c_str());
  std::printf("  layers        %lld\n", (long long)c.n_layers);
  std::printf("  d_model       %lld\n", (long long)c.d_model);
  std::printf("  heads         %lld query, %lld key/value (d_head %lld)%s\n", (long long)c.n_heads,
              (long long)c.n_kv_heads, (long long)c.d_head,
              c.n_kv_heads < c.n_heads ? ", grouped-query" : "");
  std::printf("  d_mlp         %lld (%s, %s)\n", (long long)c.d_mlp, c.gated_mlp ? "gated" : "plain",
              act_name(c.act));
  std::printf("  norm          %s (eps %g)\n", norm_name(c.norm), c.norm_eps);
  if (c.rope) {
    std::printf("  positions     RoPE theta %g%s\n", c.rope_theta,
                c.rope_scaling.type.empty() ? "" : (", scaling " + c.rope_scaling.type).c_str());
  } else {
    std::printf("  positions     learned absolute\n");
  }
  if (c.block.post_norms || c.block.qk_norm || c.block.embed_scale > 0 || !c.block.sliding.empty()) {
    std::string b;
    auto add = [&b](const std::string& s) { b += (b.empty() ? "" : "; ") + s; };
    if (c.block.post_norms) add("post-norms on attention and MLP outputs");
    if (c.block.qk_norm) add("q/k norms");
    if (c.block.embed_scale > 0) add("embeddings x " + std::to_string(c.block.embed_scale).substr(0, 6));
    if (c.block.attn_scale > 0) add("attention scale " + std::to_string(c.block.attn_scale).substr(0, 7));
    std::printf("  block         %s\n", b.c_str());
    if (!c.block.sliding.empty()) {
      int64_t n = 0;
      std::string global;
      for (int64_t l = 0; l < c.n_layers; ++l) {
        if (c.block.is_sliding(l)) ++n;
        else global += (global.empty() ? "" : ",") + std::to_string(l);
      }
      std::printf("  sliding       window %lld on %lld of %lld layers (global: %s), local RoPE theta %g\n",
                  (long long)c.block.sliding_window, (long long)n, (long long)c.n_layers,
                  global.empty() ? "none" : global.c_str(), c.block.rope_theta_local);
    }
  }
  std::printf("  context       %lld\n", (long long)c.n_ctx);
  std::printf("  vocabulary    %lld\n", (long long)c.vocab_size);
  std::printf("  unembedding   %s\n", c.tied_embeddings ? "tied to the embedding" : "separate");
  std::printf("  biases        qkv %s, o %s, mlp %s\n", c.qkv_bias ? "yes" : "no", c.o_bias ? "yes" : "no",
              c.mlp_bias ? "yes" : "no");
  std::printf("  load time     %.2f s\n", load_s);
  const GraphShape gs{c.n_layers, c.n_heads, c.n_kv_heads};
  const Graph split(gs, true), heads(gs, false);
  std::printf("graph\n");
  std::printf("  nodes         %lld sources (input, %lld heads, %lld MLPs) + logits\n",
              (long long)split.n_sources(), (long long)(c.n_layers * c.n_heads), (long long)c.n_layers);
  std::printf("  edges         %lld with q/k/v readers%s, %lld at head level\n", (long long)split.n_edges(),
              split.grouped() ? " (k/v per key/value head)" : "", (long long)heads.n_edges());
  if (!m.has_tokenizer()) {
    std::printf("tokenizer\n  none (no tokenizer.json, vocab.json + merges.txt in %s)\n", src.dir.c_str());
  } else {
    const auto& t = m.tokenizer();
    std::printf("tokenizer\n");
    std::printf("  source        %s\n", t.source().c_str());
    std::printf("  type          %s\n", t.describe().c_str());
    if (!t.output_labels().empty()) {
      std::string outs;
      for (const std::string& o : t.output_labels()) outs += (outs.empty() ? "" : " ") + o;
      std::printf("  outputs       %zu: %s\n", t.output_labels().size(), outs.c_str());
    }
    std::printf("  vocabulary    %d (%zu added tokens)\n", t.vocab_size(), t.added_tokens().size());
    auto tok = [&](std::optional<int32_t> id) {
      return id ? std::to_string(*id) + " " + quoted(t.piece(*id)) : std::string("none");
    };
    std::printf("  bos           %s%s\n", tok(t.bos_id()).c_str(), t.add_bos() ? " (prepended)" : "");
    std::printf("  eos           %s\n", tok(t.eos_id()).c_str());
  }
  if (!m.load_notes().empty()) {
    std::printf("notes\n");
    for (const auto& n : m.load_notes()) std::printf("  - %s\n", n.c_str());
  }
}

void cmd_run(const ModelArgs& a, const std::string& prompt, int top_k) {
  apply_threads(a);
  Model m = Model::load(a.model, load_options(a));
  auto ids = encode_prompt(m, prompt);
  const NextTokens nt = next_tokens(m, ids, top_k);
  std::printf("prompt: %s (%zu tokens)\n", quoted(prompt).c_str(), ids.size());
  std::printf("%4s  %7s  %-24s  %9s  %9s\n", "rank", "id", "token", "prob", "logit");
  const Tokenizer& t = m.tokenizer();
  bool padding = false;
  for (size_t i = 0; i < nt.ids.size(); ++i) {
    // Rows of the embedding beyond the tokenizer's ids (padded vocabularies) have no text.
    const bool pad_row = nt.ids[i] >= t.n_outputs();
    padding = padding || pad_row;
    // A model with its own output space (Tracr) names its outputs by label, not by token.
    const std::string label = pad_row ? t.token_label(static_cast<int32_t>(nt.ids[i]))
                              : t.output_labels().empty() ? quoted(t.token_text(nt.ids[i]))
                                                          : t.output_labels()[nt.ids[i]];
    std::printf("%4zu  %7lld  %s  %9.5f  %9.4f\n", i + 1, (long long)nt.ids[i], pad(label, 24).c_str(), nt.probs[i],
                nt.logits[i]);
  }
  if (padding)
    std::printf("(<id N>: a row of the model's %lld-row embedding beyond the tokenizer's %d ids: padding, no token)\n",
                (long long)m.config().vocab_size, t.vocab_size());
}

void cmd_generate(const ModelArgs& a, const std::string& prompt, int n) {
  apply_threads(a);
  Model m = Model::load(a.model, load_options(a));
  if (!m.tokenizer().output_labels().empty())
    fail(a.model, "this model's outputs are not tokens of its input (a Tracr model): nothing to generate; "
                  "`edgewise run` shows its output at the last position");
  auto ids = encode_prompt(m, prompt);
  const size_t prompt_len = ids.size();
  std::cout << prompt << std::flush;
  std::string shown;
  // Print the newly completed text (decoding the whole continuation keeps multi-byte characters
  // split across tokens intact).
  generate_greedy(m, ids, n, [&](const std::vector<int32_t>& all) {
    std::string text = m.tokenizer().decode_shown(std::vector<int32_t>(all.begin() + prompt_len, all.end()));
    if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) {
      std::cout << text.substr(shown.size()) << std::flush;
      shown = text;
    }
  });
  std::cout << "\n";
}

void cmd_tokenize(const ModelArgs& a, const std::string& text, bool no_bos, bool ids_only) {
  Model m = Model::load(a.model, load_options(a));
  const auto& t = m.tokenizer();
  // By default show exactly what the model's forward sees (BOS included when the model asks).
  auto ids = no_bos ? t.encode(text) : t.encode_for_model(text);
  if (ids_only) {  // for scripts: the ids on one line, nothing else
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
    return;
  }
  std::printf("%zu tokens\n", ids.size());
  std::printf("%5s  %7s  %-24s  %s\n", "pos", "id", "piece", "text");
  for (size_t i = 0; i < ids.size(); ++i)
    std::printf("%5zu  %7d  %s  %s\n", i, ids[i], pad(quoted(t.piece(ids[i])), 24).c_str(),
                quoted(t.token_text(ids[i])).c_str());
}

}  // namespace

void add_model_args(CLI::App* cmd, ModelArgs& a) {
  cmd->add_option("model", a.model,
                  "Model: HF directory, .gguf/.safetensors file, cached hub id, or a bundled model "
                  "(smollm2-135m, gemma-3-270m; default: SmolLM2-135M-Instruct)");
  cmd->add_option("--dtype", a.dtype, "Compute dtype of the weights")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--threads", a.threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", a.device,
                  "Where the weights live and every pass runs: cpu, cuda, cuda:N, or auto (the first GPU "
                  "when this libtorch has CUDA and one is visible, else cpu)")
      ->capture_default_str();
}

void register_model_commands(CLI::App& app) {
  static ModelArgs info_a, run_a, gen_a, tok_a;
  static std::string run_prompt, gen_prompt, tok_text;
  static int top_k = 10, n_new = 20;
  static bool tok_no_bos = false, tok_ids = false;

  auto* info = app.add_subcommand("info", "Architecture, sizes, dtype, tokenizer and files of a model");
  add_model_args(info, info_a);
  info->callback([] { cmd_info(info_a); });

  auto* run = app.add_subcommand("run", "Next-token table (top-k tokens with probabilities) for a prompt");
  add_model_args(run, run_a);
  run->add_option("--prompt,-p", run_prompt, "Prompt text")->required();
  run->add_option("--top-k,-k", top_k, "Rows in the table")->check(CLI::PositiveNumber)->capture_default_str();
  run->callback([] { cmd_run(run_a, run_prompt, top_k); });

  auto* gen = app.add_subcommand("generate", "Greedy continuation of a prompt");
  add_model_args(gen, gen_a);
  gen->add_option("--prompt,-p", gen_prompt, "Prompt text")->required();
  gen->add_option("-n,--new-tokens", n_new, "Tokens to generate")->check(CLI::PositiveNumber)->capture_default_str();
  gen->callback([] { cmd_generate(gen_a, gen_prompt, n_new); });

  auto* tok = app.add_subcommand("tokenize", "Token ids and pieces of a text (to debug prompts)");
  add_model_args(tok, tok_a);
  tok->add_option("--text,-t", tok_text, "Text to tokenize")->required();
  tok->add_flag("--no-bos", tok_no_bos, "Do not prepend BOS even where the model's forward would");
  tok->add_flag("--ids", tok_ids, "Print only the token ids, space-separated on one line (for scripts)");
  tok->callback([] { cmd_tokenize(tok_a, tok_text, tok_no_bos, tok_ids); });
}

}  // namespace edgewise::cli
