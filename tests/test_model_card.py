"""Model cards: HF metadata from a results.json, the table, the reproduce command, clear errors."""

import json

import pytest
import yaml

from trajloom_hf.model_card import TrainingRecord, model_card, write_model_card

RESULTS = {
    "settings": {"split": "test", "num_clips": 32, "history_frames": 33, "future_frames": 33, "num_samples": 4,
                 "solver": "euler", "num_inference_steps": 10},
    "results": {
        "TrajLoom": {"fvmd": 12.5, "fvmd_long": 2500.0, "flow_tv": 0.01, "div_curl_energy": 0.002, "min_ade": 3.0,
                     "vae_vepe": 0.8, "vis_accuracy": 0.93, "occlusion_f1": 0.41},
        "WHN-style": {"fvmd": 40.0, "fvmd_long": 9000.0, "flow_tv": 0.02, "div_curl_energy": 0.004, "min_ade": 9.0},
        "constant velocity": {"fvmd": 30.0, "fvmd_long": 7000.0, "flow_tv": 0.0, "div_curl_energy": 0.0, "min_ade": 4.0,
                              "vis_accuracy": 0.9, "occlusion_f1": 0.2},
    },
}
RECORD = TrainingRecord(preset="cpu", reproduce="python examples/quickstart.py --preset cpu", dataset="trajloombench",
                        dataset_config="synthetic", data_description="a synthetic TrajLoomBench",
                        stages={"vae": {"command": "python examples/train_autoencoder_traj.py --x 1", "seconds": 240.0}})


def _meta(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---")[1])


def test_pipeline_card_carries_measured_values_and_reproduce_command(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    text = model_card("pipeline", model_name="trajloom-cpu", config={"hidden_size": 96, "_class_name": "X"},
                      num_parameters=1234567, results_json=path, record=RECORD, method="TrajLoom", stage_names=["vae"])
    meta = _meta(text)
    assert meta["library_name"] == "trajloom-hf" and meta["datasets"] == ["trajloombench"]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"fvmd": 12.5, "fvmd_long": 2500.0, "flow_tv": 0.01, "div_curl_energy": 0.002, "min_ade": 3.0,
                       "accuracy": 0.93, "f1": 0.41}
    assert "| **TrajLoom** (this model) | 12.5 | 2.5 |" in text  # FVMD-Long shown in units of 10^3 as in Table 1
    assert "| WHN-style | 40 | 9 |" in text and "| 0.93 | 0.41 |" in text
    assert 'TrajLoomPipeline.from_pretrained("trajloom-cpu")' in text  # default: the model name
    local = model_card("pipeline", model_name="trajloom-cpu", config={}, num_parameters=1, results_json=path,
                       record=RECORD, method="TrajLoom", stage_names=[], load_path="quickstart_out/cpu/trajloom/pipeline")
    assert 'TrajLoomPipeline.from_pretrained("quickstart_out/cpu/trajloom/pipeline")' in local
    assert "python examples/train_autoencoder_traj.py --x 1" in text and "(4.0 min on 2 CPU cores)" in text
    assert "1,234,567 parameters" in text and '"hidden_size": 96' in text and "_class_name" not in text
    write_model_card(tmp_path / "m" / "README.md", text)
    assert (tmp_path / "m" / "README.md").read_text() == text


def test_autoencoder_card_reports_vepe_and_visibility_card_its_scores(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    vae = _meta(model_card("autoencoder", model_name="v", config={"num_frames": 33, "latent_channels": 8},
                           num_parameters=10, results_json=path, record=RECORD, method="TrajLoom", stage_names=[]))
    assert [m["type"] for m in vae["model-index"][0]["results"][0]["metrics"]] == ["vepe"]
    vis = _meta(model_card("visibility", model_name="h", config={}, num_parameters=10, results_json=path,
                           record=RECORD, method="TrajLoom", stage_names=[]))
    assert {m["type"]: m["value"] for m in vis["model-index"][0]["results"][0]["metrics"]} == {"accuracy": 0.93,
                                                                                                "f1": 0.41}


def test_bad_kind_and_unknown_method_are_named(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    kw = dict(model_name="m", config={}, num_parameters=1, results_json=path, record=RECORD, stage_names=[])
    with pytest.raises(ValueError, match="`kind` must be one of"):
        model_card("flow", method="TrajLoom", **kw)
    with pytest.raises(ValueError, match="`method` 'Ours' is not in"):
        model_card("pipeline", method="Ours", **kw)


def test_stage_on_one_core_is_described(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    record = TrainingRecord(preset="cpu", reproduce="r", dataset="trajloombench", dataset_config="c", data_description="d",
                            stages={"vae": {"command": "c1", "seconds": 120.0, "one_core": True}})
    text = model_card("autoencoder", model_name="v", config={}, num_parameters=1, results_json=path, record=record,
                      method="TrajLoom", stage_names=["vae"])
    assert "(2.0 min on one core of 2 CPU cores, next to the other model's training)" in text


def test_stage_cpu_time_is_given_next_to_wall_time(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    record = TrainingRecord(preset="cpu", reproduce="r", dataset="trajloombench", dataset_config="c", data_description="d",
                            stages={"vae": {"command": "OMP_NUM_THREADS=1 c1", "seconds": 120.0, "cpu_seconds": 90.0,
                                            "threads": 1, "one_core": True}})
    text = model_card("autoencoder", model_name="v", config={}, num_parameters=1, results_json=path, record=record,
                      method="TrajLoom", stage_names=["vae"])
    assert "(2.0 min wall, 1.5 min CPU, on one core of 2 CPU cores, next to the other model's training)" in text
    assert "OMP_NUM_THREADS=1 c1" in text
