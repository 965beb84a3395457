"""Config and visit-table checks: every mistake is one sentence naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lsst_on_aws import config as checks
from lsst_on_aws_tasks import decam, simcam

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA = REPO_ROOT / "config/schemas/config.schema.yaml"


def fill_defaults(config: dict, schema_path: str) -> None:
    """Snakemake's validate fills defaults; the tests use jsonschema's own default walk."""
    schema = yaml.safe_load(Path(schema_path).read_text())

    def walk(instance: dict, node: dict) -> None:
        for key, sub in node.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = sub["default"]
            if isinstance(instance.get(key), dict):
                walk(instance[key], sub)

    walk(config, schema)


def default_config() -> dict:
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    config["visits"] = str(REPO_ROOT / config["visits"])
    config["pipeline"]["file"] = str(REPO_ROOT / config["pipeline"]["file"])
    return config


def check(config: dict):
    return checks.check_workflow_config(config, SCHEMA, fill_defaults, simcam.BANDS)


def test_default_config_passes():
    visits, chosen = check(default_config())
    assert chosen == [1, 2, 3, 4, 5, 6]
    assert visits.loc[4, "band"] == "g"


def test_empty_config_gets_every_default(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the workflow's folder, where Snakemake checks its config
    config = {"visits": str(REPO_ROOT / "config/visits.tsv")}
    check(config)
    assert config["processing"]["detection_threshold"] == 5.0
    assert config["stack"]["tag"] == "30.2026.4300"
    assert config["butler"]["output"] == "SimCam/runs/single-visit"


def test_every_schema_key_has_description_and_default():
    schema = yaml.safe_load(SCHEMA.read_text())

    def walk(node: dict, path: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            assert "default" in sub, f"{path}{key} has no default"
            walk(sub, f"{path}{key}.")

    walk(schema, "")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"processing": {"detection_treshold": 4.0}}, "unknown key processing.detection_treshold"),
        ({"colour": "red"}, "unknown key colour"),
        ({"processing": {"detection_threshold": "high"}}, "processing.detection_threshold"),
        ({"processing": {"detection_threshold": -1}}, "processing.detection_threshold"),
        ({"stack": {"method": "conda"}}, "stack.method"),
        ({"process_visits": "some"}, "process_visits"),
        ({"visits_per_job": 0}, "visits_per_job"),
        ({"butler": {"registry": "postgresql://me:secret@db.example/butler"}}, "butler.registry"),
        ({"butler": {"registry": "mysql://db/butler"}}, "butler.registry"),
        ({"butler": {"namespace": "My-Schema"}}, "butler.namespace"),
    ],
)
def test_schema_errors_name_the_key(change, expected):
    config = default_config()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    with pytest.raises(checks.ConfigError, match=expected.replace(".", r"\.")) as info:
        check(config)
    assert "\n" not in str(info.value)


def test_unknown_visit_is_named():
    config = default_config() | {"process_visits": [1, 99]}
    with pytest.raises(checks.ConfigError, match=r"visit 99 in process_visits is not in the visit table"):
        check(config)


def test_empty_visit_list():
    config = default_config() | {"process_visits": []}
    with pytest.raises(checks.ConfigError, match="no visits to process"):
        check(config)


def test_empty_visit_table(tmp_path):
    table = tmp_path / "visits.tsv"
    table.write_text("visit\tband\n")
    with pytest.raises(checks.ConfigError, match="no visits to process"):
        check(default_config() | {"visits": str(table)})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("visit\tband\n1\tr\n1\tg\n", "visit 1 appears more than once"),
        ("visit\tband\n1\ti\n", "visit 1 has band 'i'"),
        ("visit\tfilter\n1\tr\n", "lacks column"),
        ("visit\tband\tseeing_arcsec\n1\tr\tgood\n", "non-numeric value 'good'"),
        ("visit\tband\tseeing_arcsec\n1\tr\t-1\n", "seeing_arcsec must be positive"),
        ("visit\tband\n1.5\tr\n", "must hold integers"),
    ],
)
def test_bad_visit_tables(tmp_path, text, expected):
    table = tmp_path / "visits.tsv"
    table.write_text(text)
    with pytest.raises(checks.ConfigError, match=expected):
        check(default_config() | {"visits": str(table)})


def test_missing_visit_table(tmp_path):
    with pytest.raises(checks.ConfigError, match="does not exist"):
        check(default_config() | {"visits": str(tmp_path / "nope.tsv")})


def test_missing_data_directory(tmp_path):
    config = default_config() | {"data": {"source": "directory", "path": str(tmp_path / "nowhere")}}
    with pytest.raises(checks.ConfigError, match=r"does not exist \(config key data.path\)"):
        check(config)


def test_directory_source_needs_each_visit(tmp_path):
    (tmp_path / "calib").mkdir()
    for visit in (1, 2, 3):
        (tmp_path / "raw" / str(visit)).mkdir(parents=True)
    config = default_config() | {
        "data": {"source": "directory", "path": str(tmp_path)},
        "process_visits": [1, 2, 3, 4],
    }
    with pytest.raises(checks.ConfigError, match="no raw/4/ folder for visit 4"):
        check(config)
    config["process_visits"] = [1, 2, 3]
    _, chosen = check(config)
    assert chosen == [1, 2, 3]


def test_directory_source_needs_a_path():
    config = default_config() | {"data": {"source": "directory", "path": ""}}
    with pytest.raises(checks.ConfigError, match=r"data\.path is empty"):
        check(config)


@pytest.mark.parametrize(
    "stack, expected",
    [
        ({"method": "existing"}, r"stack\.method is 'existing' but stack\.load_script is empty"),
        ({"method": "lsstinstall", "products": []}, r"stack\.products is empty"),
        ({"method": "conda"}, r"stack\.method"),
    ],
)
def test_stack_methods_need_their_keys(stack, expected):
    config = default_config()
    config["stack"] = config["stack"] | stack
    with pytest.raises(checks.ConfigError, match=expected):
        check(config)


def test_command_line_strings_become_schema_types():
    """``--config`` parses nested values with YAML's BaseLoader: every scalar arrives as a string."""
    schema = yaml.safe_load(SCHEMA.read_text())
    typed = checks.coerce_command_line(
        {
            "processing": {"detection_threshold": "1e9", "background_box": "32", "psf_min_snr": "inf"},
            "process_visits": ["1", "2"],
            "stack": {"tag": "1.0"},
            "simulation": {"seed": "abc"},
        },
        schema,
    )
    assert typed["processing"] == {"detection_threshold": 1e9, "background_box": 32, "psf_min_snr": "inf"}
    assert typed["process_visits"] == [1, 2]
    assert typed["stack"]["tag"] == "1.0"  # a string key stays a string
    assert typed["simulation"]["seed"] == "abc"  # left for the schema check to report
    assert checks.coerce_command_line({"process_visits": "all"}, schema) == {"process_visits": "all"}


def test_batches_are_runs_of_the_sorted_table():
    """Runs of the whole sorted table, named by their first and last visit, chosen visits only."""
    table = [12, 3, 5, 7, 9, 11, 1]
    assert checks.batches(table, table, 1) == {str(v) + "-" + str(v): [v] for v in sorted(table)}
    assert checks.batches(table, table, 3) == {"1-5": [1, 3, 5], "7-11": [7, 9, 11], "12-12": [12]}
    # a visit's batch does not depend on which visits are chosen; empty runs are left out
    assert checks.batches(table, [5, 12], 3) == {"1-5": [5], "12-12": [12]}
    # appending visits to the table leaves the earlier batches as they were
    assert checks.batches([*table, 13, 14], table, 3) == {"1-5": [1, 3, 5], "7-11": [7, 9, 11], "12-14": [12]}


def test_pipeline_is_a_workflow_file_or_a_stacks():
    config = default_config() | {"pipeline": {"file": "pipelines/nowhere.yaml#isr"}}
    with pytest.raises(checks.ConfigError, match=r"^pipeline file pipelines/nowhere.yaml does not exist"):
        checks.check_workflow_config(config, SCHEMA, fill_defaults, simcam.BANDS)
    config["pipeline"]["file"] = "$DRP_PIPE_DIR/pipelines/DECam/DRP-Merian.yaml#isr,calibrateImage"
    checks.check_workflow_config(config, SCHEMA, fill_defaults, simcam.BANDS)  # resolved in the stack
    config["pipeline"]["overrides"] = ["thresholdValue=10"]
    with pytest.raises(
        checks.ConfigError,
        match=r"pipeline\.overrides\.0: 'thresholdValue=10' is not valid\. A task setting",
    ):
        checks.check_workflow_config(config, SCHEMA, fill_defaults, simcam.BANDS)


def test_decam_needs_instcal_files_in_a_directory_or_s3(tmp_path):
    config = default_config() | {"instrument": "DECam", "visits": str(REPO_ROOT / "config/decam-visits.tsv")}
    with pytest.raises(checks.ConfigError, match=r"instrument DECam reads InstCal files from a directory"):
        checks.check_workflow_config(config, SCHEMA, fill_defaults, decam.BANDS)
    config["data"] = {"source": "directory", "path": str(tmp_path / "nowhere")}
    with pytest.raises(checks.ConfigError, match=r"does not exist \(config key data\.path\)"):
        checks.check_workflow_config(config, SCHEMA, fill_defaults, decam.BANDS)
    config["data"]["path"] = str(tmp_path)
    with pytest.raises(checks.ConfigError, match=r"data\.refcat '' holds no Gaia catalogue files"):
        checks.check_workflow_config(config, SCHEMA, fill_defaults, decam.BANDS)
    (tmp_path / "gaia").mkdir()
    (tmp_path / "gaia" / "chunk-1.fits").write_bytes(b"")
    config["data"]["refcat"] = str(tmp_path / "gaia")
    _, chosen = checks.check_workflow_config(config, SCHEMA, fill_defaults, decam.BANDS)
    assert chosen[0] == 431608 and len(chosen) == 9
    # from S3: the URIs' contents are checked when staged (test_decam, test_s3_data)
    config["data"] = {"source": "s3", "path": "s3://survey/decam", "refcat": "s3://survey/gaia"}
    checks.check_workflow_config(config, SCHEMA, fill_defaults, decam.BANDS)
    config["data"]["path"] = str(tmp_path)
    with pytest.raises(checks.ConfigError, match=r"data\.path '.*' is not an s3://bucket/prefix URI"):
        checks.check_workflow_config(config, SCHEMA, fill_defaults, decam.BANDS)
