"""Reads the circuit files test_circuit.cpp wrote as EAP-IG's Graph.from_json would.

An independent re-statement of EAP-IG's graph (hannamw/EAP-IG, src/eap/graph.py, from_model, both
branches of parallel_attn_mlp: with it, the MLP of a layer is fed by the residual stream before
that layer's heads join it): its node names and its edge names for the file's cfg. from_json
requires the keys cfg/nodes/edges and looks up every edge name in that set, reading
{"score", "in_graph"}; so a file it can read has exactly those names and value types. Grouped-
query (n_kv_heads < n_heads) and head-level files are edgewise extensions EAP-IG cannot build;
for those the names are checked against the same rules with k/v readers per key/value head.
"""
import argparse
import glob
import json
import sys


def eap_ig_names(cfg, split_qkv=True):
    L, H = cfg["n_layers"], cfg["n_heads"]
    G = cfg.get("n_kv_heads", H)
    nodes, edges = ["input"], []
    stream = ["input"]
    for l in range(L):
        heads = [f"a{l}.h{h}" for h in range(H)]
        for src in stream:
            for h in range(H):
                if not split_qkv:
                    edges.append(f"{src}->a{l}.h{h}")
                    continue
                edges.append(f"{src}->a{l}.h{h}<q>")
            if split_qkv:
                for g in range(G):
                    kv = f"a{l}.h{g}" if G == H else f"a{l}.kv{g}"
                    edges.append(f"{src}->{kv}<k>")
                    edges.append(f"{src}->{kv}<v>")
        if cfg.get("parallel_attn_mlp", False):
            for src in stream:
                edges.append(f"{src}->m{l}")
            stream += heads
        else:
            stream += heads
            for src in stream:
                edges.append(f"{src}->m{l}")
        nodes += heads
        stream.append(f"m{l}")
        nodes.append(f"m{l}")
    for src in stream:
        edges.append(f"{src}->logits")
    return nodes + ["logits"], edges


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    files = sorted(glob.glob(ap.parse_args().dir + "/rt_*.json"))
    if not files:
        sys.exit("no circuit files found: test_circuit must run first")
    for f in files:
        d = json.load(open(f))
        assert all(k in d for k in ("cfg", "nodes", "edges")), f"{f}: missing cfg/nodes/edges"
        assert isinstance(d["cfg"]["parallel_attn_mlp"], bool)
        split = d.get("edgewise", {}).get("split_qkv", True)
        nodes, edges = eap_ig_names(d["cfg"], split)
        assert sorted(d["nodes"]) == sorted(nodes), f"{f}: node names differ from EAP-IG's"
        assert len(d["edges"]) == len(edges) == len(set(edges)), f"{f}: {len(d['edges'])} edges, expected {len(edges)}"
        assert set(d["edges"]) == set(edges), f"{f}: edge names differ: {sorted(set(d['edges']) ^ set(edges))[:5]}"
        for name, v in d["edges"].items():
            assert isinstance(v["score"], float) and isinstance(v["in_graph"], bool), f"{f}: {name}: {v}"
        for name, v in d["nodes"].items():
            assert isinstance(v["in_graph"], bool), f"{f}: node {name}"
        # A node is in the graph exactly when one of its out-edges is (logits always).
        for n in nodes[:-1]:
            has_out = any(v["in_graph"] for e, v in d["edges"].items() if e.split("->")[0] == n)
            assert d["nodes"][n]["in_graph"] == has_out, f"{f}: node {n} in_graph flag"
        if d["cfg"]["n_layers"] == 12 and d["cfg"]["n_heads"] == 12 and split and not d["cfg"]["parallel_attn_mlp"]:
            assert len(edges) == 32491, len(edges)  # EAP-IG / MIB's GPT-2 small count
        print(f"{f}: {len(edges)} edges, names and types as EAP-IG reads them")


if __name__ == "__main__":
    main()
