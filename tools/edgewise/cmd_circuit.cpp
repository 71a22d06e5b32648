// Sub-commands on circuit files: draw (SVG through Graphviz), roc (against a ground truth).
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "edgewise/circuit.h"
#include "edgewise/outputs.h"
#include "edgewise/roc.h"

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

  static std::string roc_circuit, roc_truth, roc_csv_path, roc_svg_path;
  static bool merge_qkv = false, signed_scores = false;
  auto* roc = app.add_subcommand("roc", "ROC curve and AUC of a scored circuit against a ground-truth circuit");
  roc->add_option("--circuit,-c", roc_circuit, "Scored circuit JSON (a method's output, or a sweep's folded scores)")
      ->required()
      ->check(CLI::ExistingFile);
  roc->add_option("--truth,-t", roc_truth, "Ground-truth circuit JSON of the same graph (its in-graph edges are the truth)")
      ->required()
      ->check(CLI::ExistingFile);
  roc->add_flag("--merge-qkv", merge_qkv, "Count a head's q, k and v inputs as one edge (InterpBench's convention)");
  roc->add_flag("--signed", signed_scores,
                "Rank by the score itself (higher = more important) instead of |score|; a sweep's folded scores "
                "(the largest tau or target keeping the edge) are ranked the same either way");
  roc->add_option("--csv", roc_csv_path, "Write the curves: level,threshold,fpr,tpr, then one '# level AUC ..' line each");
  roc->add_option("--svg", roc_svg_path, "Draw the edge- and node-level curves");
  roc->footer(
      "Edge level ranks every real edge of the graph; node level ranks every source node by its best\n"
      "out-edge. The AUC is the area under the (FPR, TPR) curve, ties taken together (as\n"
      "sklearn.metrics.roc_auc_score); TPR and FPR are also given for the circuit's own in-graph edges.\n"
      "Example: edgewise roc -c acdc_sweep.json -t tests/data/tracr/reverse/truth.json --svg roc.svg");
  roc->callback([] {
    OutputFiles files;
    if (!roc_csv_path.empty()) files.add(roc_csv_path, "the curves (--csv)");
    if (!roc_svg_path.empty()) files.add(roc_svg_path, "the drawing (--svg)");
    const Circuit c = circuit_read(roc_circuit), t = circuit_read(roc_truth);
    RocOptions o;
    o.merge_qkv = merge_qkv;
    o.absolute = !signed_scores;
    const std::vector<std::pair<std::string, RocLevel>> levels = {
        {merge_qkv ? "edge (q/k/v merged)" : "edge", roc_level(roc_edge_items(c, t, o))},
        {"node", roc_level(roc_node_items(c, t, o))}};
    std::printf("%-22s %8s %9s %9s %8s %8s %8s\n", "level", "AUC", "positives", "negatives", "chosen", "TPR", "FPR");
    for (const auto& [name, l] : levels)
      std::printf("%-22s %8.4f %9lld %9lld %8lld %8.4f %8.4f\n", name.c_str(), l.curve.auc, (long long)l.curve.positives,
                  (long long)l.curve.negatives, (long long)l.chosen, l.tpr_chosen, l.fpr_chosen);
    if (!roc_csv_path.empty()) write_file_atomic(files.staged(roc_csv_path), roc_csv(levels));
    if (!roc_svg_path.empty())
      write_file_atomic(files.staged(roc_svg_path), roc_svg(levels, "ROC: " + roc_circuit + " against " + roc_truth));
    files.commit();
  });
}

}  // namespace edgewise::cli
