"""Environment parsing: each setting declared once, defaults, bounds, a named variable for each bad value."""

from __future__ import annotations

from dataclasses import fields

import pytest

from faceidx_worker.envvars import settings_of
from faceidx_worker.settings import (
    SETTINGS,
    Derived,
    ImageSettings,
    ModelSettings,
    SettingsError,
    WorkerSettings,
    build_job_id,
    load_settings,
    parse_output_uri,
)


@pytest.fixture
def base(tmp_path):
    return {
        "FACEIDX_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/faceidx-work",
        "FACEIDX_OUTPUT_URI": "s3://index-bucket/faces-v1/",
        "FACEIDX_MODEL_DIR": str(tmp_path),
    }


def test_defaults_follow_the_contract(base, tmp_path):
    settings = load_settings(base)
    model, images = settings.model, settings.images
    assert model.det_thresh == 0.5
    assert model.det_size == 640
    assert model.det_small_size == 128
    assert settings.max_idle_seconds == 60
    assert images.allowed_buckets is None
    assert settings.require_gpu is False
    assert settings.receive_wait_seconds == 20
    assert settings.receive_max_messages == 10
    assert images.decode_min_side == 1280
    assert images.decode == "adaptive"
    assert images.decode_threads == 0  # auto: resolved by with_thread_plan for the machine
    assert model.inference_threads == 0
    assert model.ort_threads == 0
    assert model.cpu_graph_rewrite is True
    assert settings.download_threads == 8
    assert settings.output.bucket == "index-bucket"
    assert settings.output.prefix == "faces-v1"
    assert model.model_pack == tmp_path.name
    assert model.model_version is None  # the model pack hashes its files
    assert settings.job_id == "local"
    assert settings.queue_role == "local"
    assert settings.metrics_enabled is True
    # below the job definition's attemptDurationSeconds (4 h), which kills without a retry
    assert settings.max_run_seconds == 3.5 * 3600
    assert settings.progress_timeout_seconds == 600


def test_run_limits_can_be_changed_or_switched_off(base):
    settings = load_settings(
        {**base, "FACEIDX_MAX_RUN_SECONDS": "5400", "FACEIDX_PROGRESS_TIMEOUT_SECONDS": "0"}
    )
    assert settings.max_run_seconds == 5400
    assert settings.progress_timeout_seconds == 0


def test_values_are_parsed(base):
    settings = load_settings(
        {
            **base,
            "FACEIDX_DET_THRESH": "0.6",
            "FACEIDX_DET_SIZE": "960",
            "FACEIDX_ALLOWED_BUCKETS": "a, b,,c",
            "FACEIDX_REQUIRE_GPU": "true",
            "FACEIDX_METRICS_ENABLED": "off",
            "FACEIDX_MODEL_PACK": "buffalo_l",
            "FACEIDX_MODEL_VERSION": "buffalo_l-2026",
            "FACEIDX_QUEUE_ROLE": "Secondary",
            "FACEIDX_DAG_RUN_ID": "manual__1",
        }
    )
    assert settings.model.det_thresh == 0.6
    assert settings.images.decode_min_side == 1920
    assert settings.images.allowed_buckets == frozenset({"a", "b", "c"})
    assert settings.require_gpu is True
    assert settings.metrics_enabled is False
    assert (settings.model.model_pack, settings.model.model_version) == ("buffalo_l", "buffalo_l-2026")
    assert settings.queue_role == "secondary"
    assert settings.dag_run_id == "manual__1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FACEIDX_QUEUE_URL", None),
        ("FACEIDX_QUEUE_URL", "faceidx-work"),
        ("FACEIDX_OUTPUT_URI", None),
        ("FACEIDX_OUTPUT_URI", "s3:///prefix"),
        ("FACEIDX_OUTPUT_URI", "gs://bucket/x"),
        ("FACEIDX_MODEL_DIR", None),
        ("FACEIDX_MODEL_DIR", "/does/not/exist"),
        ("FACEIDX_DET_THRESH", "1.0"),
        ("FACEIDX_DET_THRESH", "half"),
        ("FACEIDX_DET_SIZE", "650"),
        ("FACEIDX_DET_SMALL_SIZE", "640"),
        ("FACEIDX_MAX_IDLE_SECONDS", "-1"),
        ("FACEIDX_MAX_RUN_SECONDS", "-1"),
        ("FACEIDX_MAX_RUN_SECONDS", "3h"),
        ("FACEIDX_PROGRESS_TIMEOUT_SECONDS", "-5"),
        ("FACEIDX_MAX_IMAGE_BYTES", "0"),
        ("FACEIDX_MAX_IMAGE_PIXELS", "lots"),
        ("FACEIDX_REQUIRE_GPU", "maybe"),
        ("FACEIDX_ALLOWED_BUCKETS", " , "),
        ("FACEIDX_RECEIVE_WAIT_SECONDS", "21"),
        ("FACEIDX_RECEIVE_MAX_MESSAGES", "11"),
        ("FACEIDX_DECODE_THREADS", "-1"),
        ("FACEIDX_INFERENCE_THREADS", "65"),
        ("FACEIDX_CPU_GRAPH_REWRITE", "sometimes"),
        ("FACEIDX_HEARTBEAT_SECONDS", "300"),
        ("FACEIDX_SHUTDOWN_GRACE_SECONDS", "30"),
        ("FACEIDX_LOG_LEVEL", "LOUD"),
        ("FACEIDX_DECODE", "fast"),
    ],
)
def test_bad_values_name_the_variable(base, variable, value):
    env = dict(base)
    if value is None:
        env.pop(variable)
    else:
        env[variable] = value
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(("value", "mode"), [("full", "full"), ("FULL", "full"), ("Scaled", "scaled")])
def test_the_decode_mode_is_read_in_any_case(base, value, mode):
    assert load_settings({**base, "FACEIDX_DECODE": value}).images.decode == mode


@pytest.mark.parametrize(
    ("gpu", "cores", "env", "lanes", "ort", "decoders"),
    [
        # GPU: one lane feeds the device; every core but one decodes
        (True, 4, {}, 2, 0, 3),  # two lanes: CPU work overlaps GPU work
        (True, 1, {}, 2, 0, 1),
        # CPU: a single-threaded lane per core (at most 4), a decoder per core
        (False, 2, {}, 2, 1, 2),
        (False, 16, {}, 4, 1, 16),
        (False, 1, {}, 1, 0, 1),
        # what is set is kept
        (False, 2, {"FACEIDX_INFERENCE_THREADS": "1"}, 1, 0, 2),
        (False, 8, {"FACEIDX_ORT_THREADS": "2", "FACEIDX_DECODE_THREADS": "3"}, 4, 2, 3),
        (True, 4, {"FACEIDX_INFERENCE_THREADS": "2", "FACEIDX_ORT_THREADS": "4"}, 2, 4, 3),
    ],
)
def test_thread_plan_fits_the_machine(base, gpu, cores, env, lanes, ort, decoders):
    settings = load_settings({**base, **env}).with_thread_plan(gpu=gpu, cores=cores)
    assert (settings.model.inference_threads, settings.model.ort_threads, settings.images.decode_threads) == (
        lanes,
        ort,
        decoders,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "local"),
        ({"AWS_BATCH_JOB_ID": "abc"}, "abc"),
        ({"AWS_BATCH_JOB_ID": "abc", "AWS_BATCH_JOB_ARRAY_INDEX": "4"}, "abc:4"),
        ({"AWS_BATCH_JOB_ID": "abc:4", "AWS_BATCH_JOB_ARRAY_INDEX": "4"}, "abc:4"),
        ({"AWS_BATCH_JOB_ARRAY_INDEX": "2"}, "local:2"),
    ],
)
def test_job_id(env, expected):
    assert build_job_id(env) == expected


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix", "local"),
    [
        ("s3://b", "b", "", None),
        ("s3://b/p/q/", "b", "p/q", None),
        ("/tmp/out", None, "", "/tmp/out"),
        ("file:///tmp/out", None, "", "/tmp/out"),
    ],
)
def test_output_uri(uri, bucket, prefix, local):
    location = parse_output_uri(uri)
    assert location.bucket == bucket
    assert location.prefix == prefix
    assert (str(location.local_dir) if location.local_dir else None) == local


def test_each_setting_is_one_field_and_the_table_lists_them_all():
    declared = [spec for cls in (WorkerSettings, ModelSettings, ImageSettings) for spec in fields(cls)]
    settings = [spec for spec in declared if "env" in spec.metadata]
    assert {spec.name for spec in declared} - {spec.name for spec in settings} == {
        "model",
        "images",
        "job_id",
    }
    assert [s.name for s in SETTINGS] == [spec.name for spec in settings]
    envs = [s.env for s in SETTINGS]
    assert len(set(envs)) == len(envs)
    assert all(env.startswith("FACEIDX_") for env in envs)
    for setting in SETTINGS:
        assert setting.env == "FACEIDX_" + setting.name.upper() or setting.name in {"output", "crops_uri"}
        assert setting.description.strip(), setting.name
        assert setting.kind in {"str", "int", "float", "bool", "url", "uri", "dir", "list"}, setting.name
        assert (setting.default is None) or not setting.required, setting.name


def test_defaults_are_the_fields_(base):
    """Every default a run gets is the one its field declares (what the docs show)."""
    settings = load_settings(base)
    groups = {WorkerSettings: settings, ModelSettings: settings.model, ImageSettings: settings.images}
    for cls, values in groups.items():
        for setting in settings_of(cls):
            if setting.required or isinstance(setting.default, Derived):
                continue
            assert getattr(values, setting.name) == setting.default, setting.name
    assert str(next(s for s in SETTINGS if s.name == "decode_min_side").default) == "2 x FACEIDX_DET_SIZE"


def test_search_reads_the_model_and_image_settings_alone(tmp_path):
    """No queue URL, no output: the model settings and the image settings stand on their own."""
    env = {"FACEIDX_MODEL_DIR": str(tmp_path), "FACEIDX_DET_SIZE": "960", "FACEIDX_MAX_IMAGE_BYTES": "1000"}
    model = ModelSettings.from_env(env)
    images = ImageSettings.from_env(env, model)
    assert (model.model_dir, model.det_size, model.model_pack) == (tmp_path, 960, tmp_path.name)
    assert (images.max_image_bytes, images.decode_min_side) == (1000, 1920)
    with pytest.raises(SettingsError) as caught:
        ModelSettings.from_env({})
    assert caught.value.variable == "FACEIDX_MODEL_DIR"


@pytest.mark.parametrize("old", ["QUEUE_URL", "FACE_MODEL_DIR", "MAX_IDLE_SECONDS", "FACEIDX_MODEL_NAME"])
def test_names_without_the_prefix_are_not_read(base, old):
    """The unprefixed names of a rename that never shipped are gone: only FACEIDX_* is read."""
    settings = load_settings({**base, old: "/elsewhere" if "DIR" in old else "7"})
    assert settings.max_idle_seconds == 60
    assert settings.model.model_pack != "7"


def test_a_blank_value_counts_as_unset(base):
    assert load_settings({**base, "FACEIDX_DET_SIZE": " "}).model.det_size == 640
