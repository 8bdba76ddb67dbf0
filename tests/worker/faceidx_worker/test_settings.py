"""Environment parsing: defaults, bounds, and a named variable for every bad value."""

from __future__ import annotations

import pytest

from faceidx_worker.settings import SettingsError, build_job_id, load_settings, parse_output_uri


@pytest.fixture
def base(tmp_path):
    return {
        "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/faceidx-work",
        "OUTPUT_URI": "s3://index-bucket/faces-v1/",
        "FACE_MODEL_DIR": str(tmp_path),
    }


def test_defaults_follow_the_contract(base, tmp_path):
    settings = load_settings(base)
    assert settings.det_thresh == 0.5
    assert settings.det_size == 640
    assert settings.det_small_size == 128
    assert settings.max_idle_seconds == 60
    assert settings.allowed_buckets is None
    assert settings.require_gpu is False
    assert settings.receive_wait_seconds == 20
    assert settings.receive_max_messages == 10
    assert settings.decode_min_side == 1280
    assert settings.decode_threads == 0  # auto: resolved by with_thread_plan for the machine
    assert settings.inference_threads == 0
    assert settings.ort_threads == 0
    assert settings.cpu_graph_rewrite is True
    assert settings.download_threads == 8
    assert settings.output.bucket == "index-bucket"
    assert settings.output.prefix == "faces-v1"
    assert settings.model_name == tmp_path.name
    assert settings.job_id == "local"
    assert settings.queue_role == "local"
    assert settings.metrics_enabled is True
    # below the job definition's attemptDurationSeconds (4 h), which kills without a retry
    assert settings.max_run_seconds == 3.5 * 3600
    assert settings.progress_timeout_seconds == 600


def test_run_limits_can_be_changed_or_switched_off(base):
    settings = load_settings({**base, "MAX_RUN_SECONDS": "5400", "PROGRESS_TIMEOUT_SECONDS": "0"})
    assert settings.max_run_seconds == 5400
    assert settings.progress_timeout_seconds == 0


def test_values_are_parsed(base):
    settings = load_settings(
        {
            **base,
            "DET_THRESH": "0.6",
            "DET_SIZE": "960",
            "ALLOWED_BUCKETS": "a, b,,c",
            "REQUIRE_GPU": "true",
            "METRICS_ENABLED": "off",
            "MODEL_NAME": "buffalo_l",
            "FACEIDX_QUEUE_ROLE": "Secondary",
            "FACEIDX_DAG_RUN_ID": "manual__1",
        }
    )
    assert settings.det_thresh == 0.6
    assert settings.decode_min_side == 1920
    assert settings.allowed_buckets == frozenset({"a", "b", "c"})
    assert settings.require_gpu is True
    assert settings.metrics_enabled is False
    assert settings.model_name == "buffalo_l"
    assert settings.queue_role == "secondary"
    assert settings.dag_run_id == "manual__1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("QUEUE_URL", None),
        ("QUEUE_URL", "faceidx-work"),
        ("OUTPUT_URI", None),
        ("OUTPUT_URI", "s3:///prefix"),
        ("OUTPUT_URI", "gs://bucket/x"),
        ("FACE_MODEL_DIR", None),
        ("FACE_MODEL_DIR", "/does/not/exist"),
        ("DET_THRESH", "1.0"),
        ("DET_THRESH", "half"),
        ("DET_SIZE", "650"),
        ("DET_SMALL_SIZE", "640"),
        ("MAX_IDLE_SECONDS", "-1"),
        ("MAX_RUN_SECONDS", "-1"),
        ("MAX_RUN_SECONDS", "3h"),
        ("PROGRESS_TIMEOUT_SECONDS", "-5"),
        ("MAX_IMAGE_BYTES", "0"),
        ("MAX_IMAGE_PIXELS", "lots"),
        ("REQUIRE_GPU", "maybe"),
        ("ALLOWED_BUCKETS", " , "),
        ("RECEIVE_WAIT_SECONDS", "21"),
        ("RECEIVE_MAX_MESSAGES", "11"),
        ("DECODE_THREADS", "-1"),
        ("INFERENCE_THREADS", "65"),
        ("CPU_GRAPH_REWRITE", "sometimes"),
        ("HEARTBEAT_SECONDS", "300"),
        ("SHUTDOWN_GRACE_SECONDS", "30"),
        ("LOG_LEVEL", "LOUD"),
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


@pytest.mark.parametrize(
    ("gpu", "cores", "env", "lanes", "ort", "decoders"),
    [
        # GPU: one lane feeds the device; every core but one decodes
        (True, 4, {}, 1, 0, 3),
        (True, 1, {}, 1, 0, 1),
        # CPU: a single-threaded lane per core (at most 4), a decoder per core
        (False, 2, {}, 2, 1, 2),
        (False, 16, {}, 4, 1, 16),
        (False, 1, {}, 1, 0, 1),
        # what is set is kept
        (False, 2, {"INFERENCE_THREADS": "1"}, 1, 0, 2),
        (False, 8, {"ORT_THREADS": "2", "DECODE_THREADS": "3"}, 4, 2, 3),
        (True, 4, {"INFERENCE_THREADS": "2", "ORT_THREADS": "4"}, 2, 4, 3),
    ],
)
def test_thread_plan_fits_the_machine(base, gpu, cores, env, lanes, ort, decoders):
    settings = load_settings({**base, **env}).with_thread_plan(gpu=gpu, cores=cores)
    assert (settings.inference_threads, settings.ort_threads, settings.decode_threads) == (
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
