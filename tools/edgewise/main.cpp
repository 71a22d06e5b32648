// `edgewise`: the command line. Parses options, calls the library, prints results; turns every
// user-caused failure into one line on stderr and a non-zero exit (1: the input was bad,
// 2: the command line was).
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include <iostream>

#include "commands.h"
#include "edgewise/error.h"
#include "edgewise/memory.h"

namespace {

// "--text=" (an empty value joined by '=') as "--text" "": CLI11 2.1 reads the joined form as a
// missing value, while "--text ''" works.
std::vector<std::string> split_empty_values(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--") {  // everything after is positional
      for (; i < argc; ++i) out.push_back(argv[i]);
      break;
    }
    if (s.size() > 3 && s.compare(0, 2, "--") == 0 && s.back() == '=' && s.find('=') == s.size() - 1) {
      out.push_back(s.substr(0, s.size() - 1));
      out.push_back("");
    } else {
      out.push_back(s);
    }
  }
  std::reverse(out.begin(), out.end());  // CLI11's parse(vector) takes the arguments reversed
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  edgewise::prefer_passive_threads(argv);
  edgewise::tune_allocator();
  CLI::App app{
      "edgewise " EDGEWISE_VERSION
      " - find circuits in transformer language models.\n\n"
      "MODEL (optional, positional) is a Hugging Face directory (config.json + safetensors),\n"
      "a .gguf or .safetensors file, or a hub id (owner/name) already in the local Hugging Face\n"
      "cache. Without MODEL the bundled default, SmolLM2-135M-Instruct (GGUF), is used.\n"
      "Nothing is ever downloaded; pickled .bin checkpoints are refused.\n\n"
      "Examples:\n"
      "  edgewise info\n"
      "  edgewise run --prompt 'The capital of France is' --top-k 5\n"
      "  edgewise generate --prompt 'Once upon a time' -n 20\n"
      "  edgewise tokenize --text 'When Mary and John went to the store'\n"
      "  edgewise evaluate --task ioi --circuit circuit.json --ablation resample\n"
      "  edgewise draw circuit.json -o circuit.svg\n"
      "  edgewise view circuit.json -o circuit.html        # interactive, opens from disk\n"
      "  edgewise discover tests/data/tracr/reverse -t tracr-reverse -n 324 --method acdc -o acdc.json\n",
      "edgewise"};
  app.set_version_flag("--version", EDGEWISE_VERSION);
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);
  edgewise::cli::register_model_commands(app);
  edgewise::cli::register_circuit_commands(app);
  edgewise::cli::register_evaluate_command(app);
  edgewise::cli::register_discover_command(app);
  edgewise::cli::register_tune_command(app);
  edgewise::cli::register_prune_command(app);
  try {
    std::vector<std::string> args = split_empty_values(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const edgewise::Error& e) {
    std::fprintf(stderr, "edgewise: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "edgewise: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "edgewise: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgewise: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
