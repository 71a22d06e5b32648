// libFuzzer harness: Hugging Face config.json (hf_config_parse, the torch-free parser behind
// config_from_hf_json). The input is the file's text; an accepted configuration must describe
// a buildable model (the checks of hf_config_validate hold). A Tracr config is also read as the
// model's word vocabulary (Tokenizer::from_tracr_config, issue 25): words one per id, the BOS
// inside, as many output labels as outputs; and its words encode and decode back.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "edgewise/config_json.h"
#include "edgewise/tokenizer.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ew_fuzz::accepts([&] {
    const edgewise::HfConfig c = edgewise::hf_config_parse("fuzz/config.json", text);
    if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.d_head <= 0 ||
        c.d_mlp <= 0 || c.vocab_size <= 0 || c.n_ctx <= 0 || c.n_heads % c.n_kv_heads != 0)
      std::abort();
    if (c.act != "gelu_new" && c.act != "gelu" && c.act != "silu" && c.act != "relu") std::abort();
    if (c.n_outputs < 0 || (c.model_type == "tracr" && c.n_outputs == 0)) std::abort();
  });
  if (text.find("tracr") == std::string::npos) return 0;
  static ew_fuzz::MemFile file("config.json");
  const std::string& path = file.write(data, size);
  ew_fuzz::accepts([&] {
    const edgewise::Tokenizer t = edgewise::Tokenizer::from_tracr_config(path);
    if (!t.word_level() || t.vocab_size() <= 0 || t.n_outputs() <= 0) std::abort();
    if (t.bos_id() && (*t.bos_id() < 0 || *t.bos_id() >= t.vocab_size())) std::abort();
    std::string all;
    for (int32_t i = 0; i < t.vocab_size(); ++i) all += (i ? " " : "") + t.piece(i);
    const std::vector<int32_t> ids = t.encode(all);
    if (static_cast<int32_t>(ids.size()) != t.vocab_size() || t.decode(ids) != all) std::abort();
  });
  return 0;
}
