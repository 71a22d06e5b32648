// Sub-commands on circuit files: draw (SVG through Graphviz).
#include <cstdio>

#include "commands.h"
#include "edgewise/circuit.h"
#include "edgewise/outputs.h"

namespace edgewise::cli {

void register_circuit_commands(CLI::App& app) {
  static std::string in_file, out_file;
  static bool no_prune = false;
  auto* draw = app.add_subcommand("draw", "Render a circuit file as SVG (nodes by layer, edges weighted by |score|)");
  draw->add_option("circuit", in_file, "Circuit JSON (edgewise or EAP-IG format)")->required()->check(CLI::ExistingFile);
  draw->add_option("-o,--output", out_file, "SVG file to write")->required();
  draw->add_flag("--no-prune", no_prune, "Draw every in-circuit edge, even those on no input->logits path");
  draw->footer(
      "Blue edges have positive scores, red negative; pen width is proportional to |score|.\n"
      "Edges into q are solid, into k dashed, into v dotted.");
  draw->callback([] {
    check_output_path(out_file, "the drawing (-o)");
    require_program("dot", "draw (Graphviz)");
    Circuit c = circuit_read(in_file);
    if (!no_prune) c.prune();
    circuit_draw_svg(c, out_file);
    std::printf("%s: %lld edges drawn\n", out_file.c_str(), (long long)c.n_edges_in());
  });
}

}  // namespace edgewise::cli
