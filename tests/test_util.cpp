// Unit tests of the torch-free utilities: bounds-checked mapped files, model-spec resolution
// (directories, single files, the local hub cache, refusal of pickles), the safetensors writer
// (read back here; tests/reference/safetensors_check.py reads the same file with the
// `safetensors` library). No model files needed:
// each test builds the little directory tree it resolves.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "edgewise/config_json.h"
#include "edgewise/error.h"
#include "edgewise/hf.h"
#include "edgewise/mapped_file.h"
#include "edgewise/safetensors.h"

namespace fs = std::filesystem;
using edgewise::Error;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/ew_test_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

void touch(const fs::path& p, const std::string& content = "x") {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for one scope.
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(const std::string& n, const std::string& v) : name(n) {
    if (const char* o = std::getenv(n.c_str())) old = o;
    setenv(n.c_str(), v.c_str(), 1);
  }
  ~EnvVar() { old ? setenv(name.c_str(), old->c_str(), 1) : unsetenv(name.c_str()); }
};

TEST(MappedFile, SpanChecksBounds) {
  TempDir t;
  touch(t.path / "f", "0123456789");
  auto f = edgewise::MappedFile::open((t.path / "f").string());
  EXPECT_EQ(f->size(), 10u);
  EXPECT_EQ(*f->span(3, 2, "x"), '3');
  EXPECT_NO_THROW(f->span(10, 0, "empty tail"));
  std::string e = error_of([&] { f->span(8, 3, "tensor 'w' data"); });
  EXPECT_NE(e.find("tensor 'w' data"), std::string::npos) << e;
  EXPECT_NE(e.find((t.path / "f").string()), std::string::npos) << e;
  // An offset near 2^64 must not wrap around.
  EXPECT_THROW(f->span(~0ull - 1, 4, "huge"), Error);
  EXPECT_THROW(f->span(4, ~0ull - 1, "huge"), Error);
}

TEST(MappedFile, MissingFileAndDirectory) {
  TempDir t;
  std::string e = error_of([&] { edgewise::MappedFile::open((t.path / "nope").string()); });
  EXPECT_NE(e.find("nope"), std::string::npos) << e;
  e = error_of([&] { edgewise::MappedFile::open(t.path.string()); });
  EXPECT_NE(e.find("directory"), std::string::npos) << e;
}

TEST(Resolve, HfDirectoryAndFiles) {
  TempDir t;
  fs::path d = t.path / "m";
  touch(d / "config.json", "{}");
  touch(d / "model.safetensors");
  touch(d / "tokenizer.json", "{}");
  auto s = edgewise::resolve_model(d.string());
  EXPECT_EQ(s.kind, edgewise::ModelSource::Kind::HfDir);
  ASSERT_EQ(s.weights.size(), 1u);
  EXPECT_EQ(s.weights[0], (d / "model.safetensors").string());
  EXPECT_EQ(s.tokenizer_json, (d / "tokenizer.json").string());
  EXPECT_EQ(s.config, (d / "config.json").string());
  // A single safetensors file resolves to its directory's config.
  s = edgewise::resolve_model((d / "model.safetensors").string());
  EXPECT_EQ(s.config, (d / "config.json").string());
}

TEST(Resolve, ShardedIndexInOrder) {
  TempDir t;
  fs::path d = t.path / "m";
  touch(d / "config.json", "{}");
  touch(d / "b.safetensors");
  touch(d / "a.safetensors");
  touch(d / "model.safetensors.index.json",
        R"({"metadata": {}, "weight_map": {"x": "b.safetensors", "y": "a.safetensors", "z": "b.safetensors"}})");
  auto s = edgewise::resolve_model(d.string());
  ASSERT_EQ(s.weights.size(), 2u);
  EXPECT_EQ(s.weights[0], (d / "a.safetensors").string());
  EXPECT_EQ(s.weights[1], (d / "b.safetensors").string());
  touch(d / "model.safetensors.index.json", R"({"weight_map": {"x": "missing.safetensors"}})");
  std::string e = error_of([&] { edgewise::resolve_model(d.string()); });
  EXPECT_NE(e.find("missing.safetensors"), std::string::npos) << e;
}

TEST(Resolve, PicklesAreRefused) {
  TempDir t;
  fs::path d = t.path / "m";
  touch(d / "config.json", "{}");
  touch(d / "pytorch_model.bin");
  std::string e = error_of([&] { edgewise::resolve_model(d.string()); });
  EXPECT_NE(e.find("pickle"), std::string::npos) << e;
  e = error_of([&] { edgewise::resolve_model((d / "pytorch_model.bin").string()); });
  EXPECT_NE(e.find("pickle"), std::string::npos) << e;
  EXPECT_NE(e.find("pytorch_model.bin"), std::string::npos) << e;
  // When safetensors weights sit beside a .bin, the safetensors are used.
  touch(d / "model.safetensors");
  EXPECT_EQ(edgewise::resolve_model(d.string()).weights.size(), 1u);
}

TEST(Resolve, HubCacheOffline) {
  TempDir t;
  EnvVar home("HF_HOME", t.path.string());
  EnvVar cache("HF_HUB_CACHE", "");
  fs::path repo = t.path / "hub" / "models--Org--tiny-model";
  touch(repo / "refs" / "main", "abc123");
  touch(repo / "snapshots" / "abc123" / "config.json", "{}");
  touch(repo / "snapshots" / "abc123" / "model.safetensors");
  auto s = edgewise::resolve_model("Org/tiny-model");
  EXPECT_EQ(s.dir, (repo / "snapshots" / "abc123").string());
  EXPECT_NE(s.origin.find("hub cache"), std::string::npos);
  std::string e = error_of([&] { edgewise::resolve_model("Org/absent"); });
  EXPECT_NE(e.find("Org/absent"), std::string::npos) << e;
  EXPECT_NE(e.find("never downloads"), std::string::npos) << e;
}

TEST(Resolve, DefaultModelPath) {
  EnvVar m("EDGEWISE_DEFAULT_MODEL", "/nonexistent/dir/default.gguf");
  EXPECT_EQ(edgewise::default_model_path(), "/nonexistent/dir/default.gguf");
  std::string e = error_of([&] { edgewise::resolve_model(""); });
  EXPECT_NE(e.find("setup.sh"), std::string::npos) << e;
}

TEST(Resolve, GgufFileAndDirectory) {
  TempDir t;
  touch(t.path / "only" / "model.gguf");
  auto s = edgewise::resolve_model((t.path / "only").string());
  EXPECT_EQ(s.kind, edgewise::ModelSource::Kind::Gguf);
  EXPECT_EQ(s.gguf, (t.path / "only" / "model.gguf").string());
  std::string e = error_of([&] { edgewise::resolve_model((t.path / "nothing-here").string()); });
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;
}

}  // namespace

// The writer: a file with several dtypes, an empty and a 0-d tensor and metadata, read back by our
// reader (exact bytes) and left in golden/st_write/ for safetensors_check.py (the peer library).
TEST(SafetensorsWrite, RoundTripAndPeerFile) {
  const fs::path dir = fs::path(EW_GOLDEN_DIR) / "st_write";
  fs::create_directories(dir);
  const std::string path = (dir / "written.safetensors").string();
  const std::vector<float> a = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 2.5f};
  const std::vector<int64_t> b = {-1, 2, int64_t(1) << 40, 7};
  const std::vector<uint8_t> c = {1, 2, 255};
  const double e = 3.25;
  using edgewise::StDType;
  edgewise::safetensors_write(path,
                              {{"a", StDType::F32, {2, 3}, a.data(), 24},
                               {"b", StDType::I64, {4}, b.data(), 32},
                               {"c", StDType::U8, {3}, c.data(), 3},
                               {"e", StDType::F64, {}, &e, 8},
                               {"z", StDType::F32, {0}, nullptr, 0}},
                              {{"format", "edgewise-test"}, {"note", "written by test_util"}});
  auto f = edgewise::SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.metadata().at("format"), "edgewise-test");
  const auto* ta = f.find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ta->data, a.data(), 24), 0);
  EXPECT_EQ(std::memcmp(f.find("b")->data, b.data(), 32), 0);
  EXPECT_EQ(std::memcmp(f.find("c")->data, c.data(), 3), 0);
  EXPECT_EQ(f.find("e")->shape.size(), 0u);
  EXPECT_EQ(*reinterpret_cast<const double*>(f.find("e")->data), 3.25);
  EXPECT_EQ(f.find("z")->nbytes, 0u);
  // Every tensor's data starts 8-byte aligned in the file (the format's recommendation).
  for (const auto& [name, t] : f.tensors()) {
    if (t.nbytes) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 8, 0u) << name;
    }
  }
  // A byte count that does not match the shape, and a repeated name, are refused naming the tensor.
  const std::string bad = (dir / "bad.safetensors").string();
  EXPECT_NE(error_of([&] { edgewise::safetensors_write(bad, {{"a", StDType::F32, {2, 3}, a.data(), 20}}); }).find("'a'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              edgewise::safetensors_write(bad, {{"a", StDType::U8, {3}, c.data(), 3}, {"a", StDType::U8, {3}, c.data(), 3}});
            }).find("twice"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(bad));
}

// ---------------------------------------------------------------- config.json (fuzz regressions)
// hf_config_parse, the torch-free parser behind config_from_hf_json (test_model's ModelConfigJson
// checks the ModelConfig side). Inputs from fuzz/fuzz_config.cpp's harness are kept in
// fuzz/regressions/fuzz_config/, which `scripts/fuzz.sh smoke` replays (docs/FUZZING.md).
TEST(ConfigJson, ParsesEachArchitecture) {
  const edgewise::HfConfig g = edgewise::hf_config_parse("c.json", R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4})");
  EXPECT_EQ(g.d_mlp, 256);  // GPT2Config's n_inner default, 4 x n_embd
  EXPECT_EQ(g.d_head, 16);
  EXPECT_TRUE(g.layer_norm && g.positional_embedding && !g.rope);
  const edgewise::HfConfig l = edgewise::hf_config_parse(
      "c.json", R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "intermediate_size": 128, "eos_token_id": [7, 8],
                    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 64}})");
  EXPECT_EQ(l.n_kv_heads, 2);
  EXPECT_EQ(l.act, "silu");
  EXPECT_EQ(l.rope_scaling.type, "llama3");
  EXPECT_EQ(l.rope_scaling.original_max_position_embeddings, 64);
  EXPECT_EQ(l.eos_token_id, 7);
  const edgewise::HfConfig n = edgewise::hf_config_parse(
      "c.json", R"({"model_type": "gpt_neox", "hidden_size": 64, "num_attention_heads": 4, "rotary_pct": 0.5})");
  EXPECT_EQ(n.rotary_dims, 8);
  EXPECT_TRUE(n.parallel);
}

// n_embd near INT64_MAX made the default n_inner (4 x n_embd) overflow a signed 64-bit integer
// (UBSan: signed-integer-overflow); found by replaying a hand-made input through fuzz_config.
TEST(ConfigJson, FuzzHugeWidthIsAnError) {
  const std::string msg = error_of([] {
    edgewise::hf_config_parse("fuzz/config.json", R"({"model_type":"gpt2","n_embd":4611686018427387904,"n_head":1})");
  });
  EXPECT_EQ(msg, "fuzz/config.json: n_embd 4611686018427387904 is too large: the default n_inner, 4 x n_embd, overflows");
  // With n_inner given there is no default to compute; the width is then only checked positive.
  EXPECT_NO_THROW(edgewise::hf_config_parse(
      "c.json", R"({"model_type":"gpt2","n_embd":4611686018427387904,"n_head":1,"n_inner":8})"));
}

// Tracr's config (tools/tracr/export.py): sizes from its keys, lengths from its lists, and its
// bounds checked before any arithmetic (max_seq_len + 1 positions).
TEST(ConfigJson, TracrConfig) {
  const std::string ok = R"({"model_type": "tracr", "n_layers": 2, "n_heads": 1, "d_head": 3, "d_model": 14,
      "d_mlp": 4, "max_seq_len": 5, "input_vocab": ["BOS", "w", "x"], "output": "numerical", "causal": false,
      "bos_id": 0})";
  const edgewise::HfConfig c = edgewise::hf_config_parse("t.json", ok);
  EXPECT_EQ(c.n_ctx, 6);
  EXPECT_EQ(c.vocab_size, 3);
  EXPECT_EQ(c.n_outputs, 1);
  EXPECT_TRUE(c.no_norm && !c.causal && c.positional_embedding && !c.rope);
  EXPECT_EQ(c.act, "relu");
  auto err = [](const std::string& text) {
    try {
      edgewise::hf_config_parse("t.json", text);
    } catch (const edgewise::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string big = ok;
  big.replace(big.find("\"max_seq_len\": 5"), 16, "\"max_seq_len\": 9223372036854775807");
  EXPECT_NE(err(big).find("max_seq_len must lie in [1, 2^30]"), std::string::npos) << err(big);
  std::string cat = ok;
  cat.replace(cat.find("\"output\": \"numerical\""), 21, "\"output\": \"categorical\", \"output_values\": []");
  EXPECT_NE(err(cat).find("output_values is empty"), std::string::npos) << err(cat);
}
