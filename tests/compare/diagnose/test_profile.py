"""zoo profile: per-op time in MNN and ONNX Runtime, each op mapped to backbone / fusion block k / head.

Default tier: base-c128 and fgaf3 in both runtimes at 1 thread (the profile total against the
end-to-end latency measured in the same interleaved loop, every op assigned, per-part figures
equal to the catalog's, fusion blocks found = depth) and the CLI; the name -> part rules on
synthetic names. Slow tier: fgaf3-bn-c128.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from compare.diagnose import profile as profile_module
from compare.diagnose.onnx_graph import Graph, Node, PartMapper
from compare.diagnose.profile import Profile, profile_variant
from compare.provision import ensure, keys_for
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.export import zoo
from zoo.backends import PROFILED_RUNTIMES
from zoo.errors import UsageError
from zoo.figures import part_rows
from zoo.models import PARTS

RUNTIMES = ["mnn", "onnxruntime"]
RUNS, WARMUP = 40, 5  # medians over 40 interleaved runs: stable on a busy 2-core machine


def _export(out: Path, names: list[str]) -> Path:
    provisioned = ensure(keys_for(CATALOG.select(names), ["onnx", "mnn"], ["fp32"]), out, CATALOG)
    assert all(p.status == "built" for p in provisioned), [(p.key, p.note) for p in provisioned]
    return out


@pytest.fixture(scope="module")
def profiles(exported, tmp_path_factory):
    """``get(variant, runtime)``: the variant profiled once per module at 1 thread, on the session's
    shared artifacts (default-tier variants) or on artifacts built here on first use (others)."""
    own = tmp_path_factory.mktemp("profile-artifacts")
    built: set[str] = set()
    cache: dict[tuple[str, str], Profile] = {}

    def get(name: str, runtime: str) -> Profile:
        out = exported.out if name in DEFAULT_VARIANTS else own
        if out == own and name not in built:
            _export(own, [name])
            built.add(name)
        if (name, runtime) not in cache:
            cache[(name, runtime)] = profile_variant(CATALOG, CATALOG.get(name), runtime, threads=1, runs=RUNS, warmup=WARMUP, out=out)
        return cache[(name, runtime)]

    return get


def check_total_matches_end_to_end(p: Profile) -> None:
    t = p.totals()
    assert len(p.e2e_ms) == len(p.run_totals_ms) == len(p.profiled_ms) == RUNS
    assert t["profile_ms"] == pytest.approx(sum(op.ms for op in p.ops))
    assert 0.85 <= t["profile_vs_e2e"] <= 1.15, t
    # the ops of a run fit inside the call that ran them
    assert all(ops <= call * 1.01 for ops, call in zip(p.run_totals_ms, p.profiled_ms, strict=True))


def check_parts_cover_every_op(p: Profile, depth: int) -> None:
    t = p.totals()
    assert t["unassigned_ops"] == 0 and t["unassigned_share_pct"] == 0.0, [op.name for op in p.ops if op.part not in PARTS]
    assert all(op.part in PARTS and op.module.split(".")[0] == op.part and op.rule != "unknown" for op in p.ops)
    parts = p.parts()
    assert [r["part"] for r in parts] == list(PARTS)
    assert sum(r["ops"] for r in parts) == len(p.ops)
    assert sum(r["time_share_pct"] for r in parts) == pytest.approx(100.0)
    assert sum(r["ms"] for r in parts) == pytest.approx(t["profile_ms"])
    for level in ("block", "unit"):
        assert sum(r["share_pct"] for r in p.group(level)) == pytest.approx(100.0)
    blocks = {r["block"] for r in p.group("block")}
    assert {b for b in blocks if b.startswith("fusion.blocks.")} == {f"fusion.blocks.{k}" for k in range(depth)}
    assert t["fusion_blocks"] == t["depth"] == depth
    for k in range(depth):  # every block runs its attention and its feed-forward
        units = {op.unit for op in p.ops if op.block == f"fusion.blocks.{k}"}
        assert {f"fusion.blocks.{k}.attn", f"fusion.blocks.{k}.ffn"} <= units
    # the weighted layers all carry their module path in their name
    for op in p.ops:
        if op.type in ("Convolution", "Conv", "Gemm", "MatMul", "FusedMatMul"):
            assert op.rule in ("name", "tensor"), op


def check_part_figures_are_the_catalogs(p: Profile, name: str) -> None:
    v = CATALOG.get(name)
    figures = {r["part"]: r for r in part_rows(v)}
    rows = p.parts()
    for r in rows:
        f = figures[r["part"]]
        assert (r["macs"], r["params"]) == (f["macs"], f["params"])
        assert (r["macs_share_pct"], r["params_share_pct"], r["macs_total_share_pct"]) == \
            (f["macs_share_pct"], f["params_share_pct"], f["macs_total_share_pct"])
    assert sum(r["params"] for r in rows) == v.measured.params
    assert sum(r["macs"] for r in rows) == v.measured.macs
    if p.runtime == "mnn":  # MNN's own count of each op, summed per part, lands where the catalog counts it
        for r in rows:
            assert r["mnn_mflops"] == pytest.approx(figures[r["part"]]["macs_total"] / 1e6, rel=0.02), r


# -- default tier -------------------------------------------------------------------------------
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_profile_total_matches_end_to_end(profiles, name: str, runtime: str) -> None:
    check_total_matches_end_to_end(profiles(name, runtime))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_parts_cover_every_op(profiles, name: str, runtime: str) -> None:
    check_parts_cover_every_op(profiles(name, runtime), CATALOG.get(name).arch.fusion.depth)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_part_figures_are_the_catalogs(profiles, name: str, runtime: str) -> None:
    check_part_figures_are_the_catalogs(profiles(name, runtime), name)


@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_head_has_many_parameters_but_little_time(profiles, name: str) -> None:
    """The study's remark, measured: the head's share of time is below its share of parameters."""
    head = next(r for r in profiles(name, "mnn").parts() if r["part"] == "head")
    assert head["time_share_pct"] < head["params_share_pct"]


def test_runtimes_agree_on_where_the_weighted_layers_are(profiles) -> None:
    """Both runtimes find every linear layer of every fusion block and every head conv."""
    for runtime in RUNTIMES:
        modules = {op.module for op in profiles("fgaf3", runtime).ops}
        for k in range(3):
            assert {f"fusion.blocks.{k}.attn.qkv", f"fusion.blocks.{k}.attn.proj",
                    f"fusion.blocks.{k}.ffn.fc1", f"fusion.blocks.{k}.ffn.fc2"} <= modules, runtime
        layers = {".".join(m.split(".")[:4]) for m in modules}  # ORT names a conv fused with its ReLU after the ReLU
        assert {f"head.branches.{b}.{i}" for b in ("score", "size", "offset") for i in (0, 1)} <= layers, runtime


def test_top_ops_and_json_rows(profiles) -> None:
    p = profiles("fgaf3", "mnn")
    data = json.loads(json.dumps(p.as_json(top=5)))
    assert [r["rank"] for r in data["top"]] == [1, 2, 3, 4, 5]
    assert [r["ms"] for r in data["top"]] == sorted((op.ms for op in p.ops), reverse=True)[:5]
    assert len(data["ops"]) == data["totals"]["ops"] == len(p.ops)
    assert all(r["mflops"] is not None for r in data["ops"])  # MNN gives every op's FLOPs
    assert all(r["mflops"] is None for r in profiles("fgaf3", "onnxruntime").as_json()["ops"])


# -- the name -> part rules ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def mapper() -> PartMapper:
    return PartMapper.for_variant(CATALOG.get("fgaf3"))


@pytest.mark.parametrize("name,module", [
    ("/backbone/stages/stages.2/stages.2.1/expand/expand.0/Conv", "backbone.stages.2.1.expand.0"),
    ("/backbone/stages/stages.0/stages.0.0/stages.0.0.0_1/Conv", "backbone.stages.0.0.0"),  # second call (template)
    ("/backbone/stages/stages.3/stages.3.1_1/Add_output_0", "backbone.stages.3.1"),
    ("/head/score/score.0/score.0.0/Conv", "head.branches.score.0.0"),  # ModuleDict[key]: no segment of its own
    ("/head/Sigmoid_1", "head"),
    ("/fusion/blocks.1/attn/MatMul_2/MatMulScaleFusion/", "fusion.blocks.1.attn"),  # ORT's fusion suffix
    ("/fusion/blocks.0/ffn/fc1/Add_output_0__matmul_converted_raster_0", "fusion.blocks.0.ffn.fc1"),  # MNN's
    ("/fusion/Concat", "fusion"),
    ("/Reshape_2", None), ("score", None), ("ReorderOutput_token_3", None), ("/nowhere/Conv", None),
])
def test_module_of(mapper, name: str, module: str | None) -> None:
    assert mapper.module_of(name) == module


def test_graph_rules(mapper) -> None:
    g = Graph([
        Node("/backbone/stages/stages.3/stages.3.1/Add", ("x",), ("/backbone/stages/stages.3/stages.3.1/Add_output_0",)),
        Node("/Reshape", ("/backbone/stages/stages.3/stages.3.1/Add_output_0", "shape"), ("r",)),
        Node("ReorderOutput_token_1", ("r",), ("/fusion/Concat_output_0",)),
        Node("glue", ("search",), ("g",)),
        Node("/head/neck/neck.0/Conv", ("g",), ("n",)),
        Node("lonely", ("nothing",), ("void",)),
    ])
    rules = {n: (a.module, a.rule) for n, a in zip(g.nodes, mapper.assign_ops(list(g.nodes), g, None))}
    assert rules["/Reshape"] == ("backbone.stages.3.1", "producer")
    assert rules["ReorderOutput_token_1"] == ("fusion", "tensor")
    assert rules["glue"] == ("head.neck.0", "consumer")
    assert rules["lonely"] == ("head.neck.0", "order")  # nothing in the graph: the op before it
    assert mapper.assign_ops(["lonely"], g, None)[0].part == "unknown"
    # MNN: no executed graph; names are tensors of the exported graph, with MNN's suffixes
    mnn = mapper.assign_ops(["n__before_tr_raster_0", "r", "mystery"], None, g)
    assert [(a.module, a.rule) for a in mnn] == [("head.neck.0", "tensor"), ("backbone.stages.3.1", "producer"),
                                                 ("backbone.stages.3.1", "order")]


def test_library_rejects_bad_requests(tmp_path) -> None:
    v = CATALOG.get("fgaf3")
    with pytest.raises(UsageError, match=f"choose from {', '.join(PROFILED_RUNTIMES)}"):
        profile_variant(CATALOG, v, "tflite", out=tmp_path)
    with pytest.raises(UsageError, match="fp32"):
        profile_variant(CATALOG, v, "onnxruntime", precision="fp16", out=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing exported for a bad request


def test_library_default_artifacts_folder_is_zoo_artifacts(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_ARTIFACTS", str(tmp_path / "env"))
    seen = []

    def ensure(keys, out, catalog, **kwargs):
        seen.append(out)
        raise UsageError("stop here")
    monkeypatch.setattr(profile_module, "ensure", ensure)
    with pytest.raises(UsageError, match="stop here"):
        profile_variant(CATALOG, CATALOG.get("fgaf3"), "onnxruntime", pair={})
    assert seen == [tmp_path / "env"]


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_exports_missing_artifact_and_writes_rows(tmp_path) -> None:
    files = {k: tmp_path / f"profile.{k}" for k in ("json", "csv", "md")}
    proc = zoo("profile", "base-c128", "--runtime", "onnxruntime", "--runs", "5", "--warmup", "1", "--top", "4",
               "--out", str(tmp_path / "artifacts"), "--json", str(files["json"]), "--csv", str(files["csv"]),
               "--markdown", str(files["md"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "export base-c128 onnx: built" in proc.stderr
    assert "per part" in proc.stdout and "profile/e2e" in proc.stdout and "every op assigned" in proc.stdout
    data = json.loads(files["json"].read_text())
    assert {"machine", "totals", "top", "parts", "blocks", "units", "ops"} <= set(data)
    t = data["totals"]
    assert (t["variant"], t["runtime"], t["threads"], t["runs"]) == ("base-c128", "onnxruntime", 1, 5)
    assert len(data["top"]) == 4 and len(data["ops"]) == t["ops"] > 50
    assert [r["part"] for r in data["parts"]] == list(PARTS)
    assert {"name", "type", "ms", "share_pct", "module", "part", "block", "unit", "rule"} <= set(data["ops"][0])
    assert files["csv"].read_text().splitlines()[0].startswith("table,")
    assert "## per part" in files["md"].read_text()


@pytest.mark.parametrize("args,message", [
    (["fgaf3", "--runtime", "tflite"], f"unknown runtime 'tflite'; choose from {', '.join(PROFILED_RUNTIMES)}"),
    (["fgaf33", "--runtime", "mnn"], "unknown variant 'fgaf33' (did you mean 'fgaf3'"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args: list[str], message: str) -> None:
    proc = zoo("profile", *args, "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not any(tmp_path.iterdir())


# -- slow tier ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_batchnorm_variant(profiles, runtime: str) -> None:
    name = "fgaf3-bn-c128"
    p = profiles(name, runtime)
    check_total_matches_end_to_end(p)
    check_parts_cover_every_op(p, CATALOG.get(name).arch.fusion.depth)
    check_part_figures_are_the_catalogs(p, name)
