// Sub-commands on circuit files: draw (SVG through Graphviz), roc (against a ground truth), view
// (the interactive HTML page).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "commands.h"
#include "edgewise/circuit.h"
#include "edgewise/outputs.h"
#include "edgewise/roc.h"
#include "edgewise/view.h"

namespace edgewise::cli {

void register_circuit_commands(CLI::App& app) {
  static std::string in_file, out_file;
  static bool no_prune = false;
  static int64_t draw_top = 0;
  auto* draw = app.add_subcommand("draw", "Render a circuit file as SVG (nodes by layer, edges weighted by |score|)");
  draw->add_option("circuit", in_file, "Circuit JSON (edgewise or EAP-IG format)")->required()->check(CLI::ExistingFile);
  draw->add_option("-o,--output", out_file, "SVG file to write")->required();
  draw->add_flag("--no-prune", no_prune, "Draw every in-circuit edge, even those on no input->logits path");
  draw->add_option("--top", draw_top,
                   "Keep only the N in-circuit edges of largest |score| (then prune): readable figures stay under "
                   "~200 edges; `edgewise view` explores bigger ones")
      ->check(CLI::PositiveNumber);
  draw->footer(
      "Blue edges have positive scores, red negative; pen width is proportional to |score|.\n"
      "Edges into q are solid, into k dashed, into v dotted.");
  draw->callback([] {
    check_output_path(out_file, "the drawing (-o)");
    require_program("dot", "draw (Graphviz)");
    Circuit c = circuit_read(in_file);
    if (draw_top > 0 && c.n_edges_in() > draw_top) {
      // The N best in-circuit edges by |score| (ties: graph order).
      std::vector<size_t> in;
      for (size_t k = 0; k < c.in_graph.size(); ++k)
        if (c.in_graph[k]) in.push_back(k);
      std::stable_sort(in.begin(), in.end(), [&](size_t a, size_t b) { return std::fabs(c.scores[a]) > std::fabs(c.scores[b]); });
      for (size_t i = static_cast<size_t>(draw_top); i < in.size(); ++i) c.in_graph[in[i]] = 0;
    }
    if (!no_prune) c.prune();
    circuit_draw_svg(c, out_file);
    std::printf("%s: %lld edges drawn%s\n", out_file.c_str(), (long long)c.n_edges_in(),
                c.n_edges_in() == 0 && !no_prune ? " (no input-to-logits path among them: --no-prune draws them anyway)" : "");
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

  static std::vector<std::string> view_files;
  static std::string view_out, view_curve, view_graph_json;
  static int64_t view_show = -1;
  auto* view = app.add_subcommand("view", "One self-contained HTML page to explore a circuit, or compare several");
  view->add_option("circuits", view_files, "Circuit JSON files (edgewise or EAP-IG format), one graph")
      ->required()
      ->check(CLI::ExistingFile);
  view->add_option("-o,--output", view_out, "HTML file to write")->required();
  view->add_option("--curve", view_curve, "A faithfulness curve CSV (discover --curve) for the side panel")
      ->check(CLI::ExistingFile);
  view->add_option("--show", view_show, "Edges drawn when the page opens (default: the circuits' own edges)")
      ->check(CLI::NonNegativeNumber);
  view->add_option("--graph-json", view_graph_json,
                   "Also write the first circuit's in-graph edges as circuit-tracer / Neuronpedia graph JSON");
  view->footer(
      "The page needs no network and no server: open it from disk. Sliders choose how many edges are\n"
      "drawn (the best by |score|, circuit edges first) and a score threshold; hover names an edge or\n"
      "node and its score; clicking a node highlights every path through it from input to logits;\n"
      "search by name; wheel to zoom, drag to pan. Two or more files: shared edges and those in one\n"
      "only, with counts. Export PNG, SVG or circuit-tracer graph JSON from the page. Examples:\n"
      "  edgewise view circuit.json --curve circuit.curve.csv -o circuit.html\n"
      "  edgewise view acdc.json eap-ig.json -o compare.html");
  view->callback([] {
    OutputFiles files;
    files.add(view_out, "the page (-o)");
    if (!view_graph_json.empty()) files.add(view_graph_json, "the graph JSON (--graph-json)");
    std::vector<ViewInput> in;
    for (const std::string& f : view_files) {
      std::string stem = std::filesystem::path(f).stem().string();
      in.push_back({stem, circuit_read(f)});
    }
    ViewOptions vo;
    if (!view_curve.empty()) vo.curve = read_view_curve(view_curve);
    vo.show = view_show;
    const std::string page = circuit_view_html(in, vo);
    write_file_atomic(files.staged(view_out), page);
    if (!view_graph_json.empty())
      write_file_atomic(files.staged(view_graph_json), circuit_tracer_graph(in.front().circuit, in.front().name).dump(1) + "\n");
    files.commit();
    int64_t shown = 0;
    for (const ViewInput& v : in) shown += v.circuit.n_edges_in();
    std::printf("%s: %zu circuit%s, %lld edges in the graph, %lld in-circuit edges, %.1f MB\n", view_out.c_str(),
                in.size(), in.size() == 1 ? "" : "s", (long long)in.front().circuit.graph().n_edges(), (long long)shown,
                page.size() / 1e6);
  });
}

}  // namespace edgewise::cli
