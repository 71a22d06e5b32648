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

#include <fcntl.h>
#include <unistd.h>

#include "commands.h"
#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/memory.h"
#include "edgewise/outputs.h"
#include "launch.h"

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

// Where errors go: stderr, or on ranks other than 0 (whose output is silenced) a copy of it.
int g_err_fd = 2;

// One error line (tagged with the rank in a distributed run, whose other ranks hear of it too).
int report(const std::string& msg, int code) {
  namespace dist = edgewise::dist;
  dist::report_failure(msg);
  if (dist::active())
    dprintf(g_err_fd, "edgewise: error (rank %d of %d): %s\n", dist::rank(), dist::world_size(), msg.c_str());
  else
    dprintf(g_err_fd, "edgewise: error: %s\n", msg.c_str());
  return code;
}

// Joins the ranks torchrun, SLURM or --nproc started (nothing for one). Rank 0 prints and writes;
// the others compute the same result silently (stdout and stderr to /dev/null, errors still
// shown) and stage no file that survives (edgewise/outputs.h).
void join_ranks() {
  namespace dist = edgewise::dist;
  dist::init(dist::settings_from_environment());
  dist::on_abort(edgewise::remove_staged_outputs);
  if (!dist::active() || dist::is_root()) return;
  edgewise::set_publish_outputs(false);
  std::fflush(stdout);
  std::fflush(stderr);
  g_err_fd = ::dup(2);
  dist::set_message_fd(g_err_fd);
  const int null = ::open("/dev/null", O_WRONLY);
  if (null >= 0) {
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::close(null);
  }
}

}  // namespace

int main(int argc, char** argv) {
  edgewise::prefer_passive_threads(argv);
  edgewise::tune_allocator();
  try {  // --nproc / --pipeline are command-line options: a bad one exits 2, as CLI11's do
    const int launched = edgewise::cli::launch_if_asked(argc, argv);
    if (launched >= 0) return launched;
  } catch (const edgewise::Error& e) {
    return report(e.what(), 2);
  } catch (const std::exception& e) {
    return report(e.what(), 1);
  }
  try {  // the environment and the rendezvous: a failed run, 1
    join_ranks();
  } catch (const std::exception& e) {
    return report(e.what(), 1);
  }
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
      "  edgewise discover tests/data/tracr/reverse -t tracr-reverse -n 324 --method acdc -o acdc.json\n\n"
      "Across processes (docs/SCALING.md): `edgewise --nproc N <command> ...` starts N local ranks;\n"
      "`torchrun --nproc-per-node N --no-python edgewise <command> ...` (or SLURM) works the same way. Every rank\n"
      "takes its share of the prompts; rank 0 prints and writes. `--pipeline P` (EDGEWISE_PIPELINE_STAGES) splits\n"
      "the layers over P ranks instead, for a model larger than one device (every method).\n",
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
    namespace dist = edgewise::dist;
    if (dist::active() && dist::is_root()) {  // what crossed between the ranks (docs/SCALING.md)
      const dist::Traffic t = dist::traffic();
      std::fprintf(stderr, "distributed: %d ranks, %lld collectives, %s reduced by rank 0\n", dist::world_size(),
                   static_cast<long long>(t.collectives), edgewise::format_bytes(static_cast<double>(t.bytes)).c_str());
    }
    dist::shutdown();
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e) == 0 ? 0 : 2;
    if (code != 0) edgewise::dist::report_failure("the command line was not understood");
    return code;
  } catch (const edgewise::Error& e) {
    return report(e.what(), 1);
  } catch (const c10::Error& e) {
    return report(e.what_without_backtrace(), 1);
  } catch (const std::bad_alloc&) {
    return report("out of memory", 1);
  } catch (const std::exception& e) {
    return report(e.what(), 1);
  }
  return 0;
}
