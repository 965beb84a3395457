"""Shared helpers: copies of the workflow in temporary folders, and running Snakemake there.

Workflow tests never run in the repository itself: each works on a copy
(``copy_workflow``), so they can change config files and leave no results
behind. One complete run of the embedded default (``demo_run``) is shared by
every test that inspects its outputs or its plan.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "results",
    "resources",
    "logs",
    ".snakemake",
    "__pycache__",
    "*.egg-info",
    "build",
    ".pytest_cache",
    ".ruff_cache",
)
STACK_TAG = "30.2026.4300"
# the stand-in head node that tests/services/sshd.sh starts: its keys and port
SSHD_DIR = Path(os.environ.get("LOCAL_SSHD_DIR", "/var/tmp/lsst-on-aws/sshd"))
SSHD_PORT = int(os.environ.get("LOCAL_SSHD_PORT", "2222"))


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow's files (no results, no environments) at ``dest``."""
    shutil.copytree(REPO_ROOT, dest, ignore=IGNORE)
    return dest


# The user's home of the tests' snakemake, where `make profiles` (part of `make env`) linked
# this checkout's global profiles, so that `--profile slurm` and `--profile aws` resolve by name
# exactly as a user types them (set by the session fixture `user_home`).
USER_HOME: Path | None = None
# the package caches of the real home, so that a test's stack install stays warm
UV_CACHE = Path(os.environ.get("UV_CACHE_DIR", Path.home() / ".cache/uv"))


@pytest.fixture(scope="session", autouse=True)
def user_home(tmp_path_factory) -> Path:
    """A home folder whose ~/.config/snakemake has the profiles `make profiles` links there."""
    global USER_HOME
    home = tmp_path_factory.mktemp("home")
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "profiles", f"HOME={home}"],
        check=True,
        capture_output=True,
    )
    USER_HOME = home
    return home


def snakemake_env() -> dict[str, str]:
    """The environment the workflow's snakemake runs in: this venv first on PATH, the tests' home."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("UV_NATIVE_TLS", "1")
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    if USER_HOME is not None:
        env["HOME"] = str(USER_HOME)
        env.setdefault("UV_CACHE_DIR", str(UV_CACHE))
    return env


def run_in(
    workdir: Path, command: list[str], timeout: float = 1200, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` in ``workdir`` in the environment of :func:`snakemake_env` (``env`` added to
    it, or replacing in it); output captured as text.
    """
    return subprocess.run(
        command,
        cwd=workdir,
        env=snakemake_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def snakemake(
    workdir: Path, *args: str, timeout: float = 1200, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow environment's snakemake in ``workdir`` (:func:`run_in`)."""
    return run_in(workdir, [str(BIN / "snakemake"), *args], timeout, env)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule name -> job count from a dry run's "Job stats" table ({} when nothing to do)."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def stack_python(workdir: Path, code: str) -> object:
    """Run ``code`` with the stack's Python in ``workdir``; it prints JSON, which is returned."""
    python = workdir / "resources" / "stack" / STACK_TAG / "venv" / "bin" / "python"
    out = subprocess.run([str(python), "-c", code], cwd=workdir, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# Fake credentials a user could have in their shell, planted in the runs whose every output
# test_publishing and test_multihost search for them. The endpoint is a closed port on loopback:
# a call that used them would fail here, never reach AWS.
PLANTED_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDQ7X2W9K4ZT",
    "AWS_SECRET_ACCESS_KEY": "plantedSecretKey/wJalrXUtnFEMI+K7MDENGbPxRfiCYq3zQ",
    "AWS_SESSION_TOKEN": "PlantedSessionToken//IQoJb3JpZ2luX2VjEPlantedTokenZk41Vq",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}
# the folder of a planted SSH key: its name is as recognisable as the key's content
PLANTED_KEY_DIR = "planted-ssh-key-Zk41Vq"


def plant_ssh_key(folder: Path, key: Path | None = None) -> tuple[Path, list[str]]:
    """An SSH private key (a copy of ``key``, or a new one) at a recognisable path under ``folder``;
    its path and the lines of its body, the secrets no output may show.
    """
    path = folder / PLANTED_KEY_DIR / "id_ed25519"
    path.parent.mkdir(parents=True)
    if key is None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    else:
        shutil.copyfile(key, path)
        path.chmod(0o600)
    body = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    return path, body


def planted_secrets(key: Path, key_body: list[str]) -> list[str]:
    """What no log, report, bundle or fetched file may contain: the planted credentials, the key's
    path (and its folder's name) and each line of its body.
    """
    values = [
        PLANTED_ENV[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    ]
    return [*values, str(key), PLANTED_KEY_DIR, *key_body]


def find_secrets(paths: list[Path], secrets: list[str], skip: tuple[str, ...] = ()) -> tuple[int, dict]:
    """Search every file under ``paths`` (folders or files), and every member of the tar and zip
    archives among them (nested ones too), for ``secrets``; files whose path contains one of
    ``skip`` are not read. The number of files read, and file -> the secrets found in it.
    """
    needles = [secret.encode() for secret in secrets]
    found, count = {}, 0

    def search(name: str, data: bytes) -> None:
        nonlocal count
        count += 1
        hits = [secret for secret, needle in zip(secrets, needles, strict=True) if needle in data]
        if hits:
            found[name] = hits
        stream = io.BytesIO(data)
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(fileobj=stream) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        search(f"{name}!{member.name}", tar.extractfile(member).read())
        elif name.endswith(".zip"):
            with zipfile.ZipFile(stream) as archive:
                for member in archive.namelist():
                    search(f"{name}!{member}", archive.read(member))

    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and not file.is_symlink() and not any(part in str(file) for part in skip):
                search(str(file), file.read_bytes())
    return count, found


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The README's first command, ``make demo``, run to completion in a copy of the workflow.

    It sets up the copy's own ``.venv`` and runs the embedded default and its
    report; what it printed is kept beside the copy, in ``make-demo.out``. The
    user it stands for has AWS credentials in their shell (:data:`PLANTED_ENV`)
    and their SSH key's path in ``config/config.yaml``, where the control plane
    reads it (:func:`plant_ssh_key`; the path and its body are kept in
    ``planted-secrets.json`` beside the copy): test_publishing checks that none
    of them reaches an output.
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("demo") / "workflow")
    key, body = plant_ssh_key(workdir.parent)
    settings = workdir / "config/config.yaml"
    text = settings.read_text()
    assert text.count('ssh_key_file: ""') == 1
    settings.write_text(text.replace('ssh_key_file: ""', f'ssh_key_file: "{key}"'))
    (workdir.parent / "planted-secrets.json").write_text(json.dumps(planted_secrets(key, body)))
    result = subprocess.run(
        ["make", "demo"],
        cwd=workdir,
        env=snakemake_env() | PLANTED_ENV,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    (workdir.parent / "make-demo.out").write_text(result.stdout)
    if result.returncode != 0:
        pytest.fail(f"make demo failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return workdir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's server on 127.0.0.1, standing in for the AWS APIs it emulates; its URL.

    Clients reach it through ``AWS_ENDPOINT_URL`` (see :func:`aws_env`), with
    dummy credentials, so nothing can reach a real AWS endpoint.
    """
    port = free_port()
    workdir = tmp_path_factory.mktemp("moto")
    # recording on (see moto_recording); the recording file in a temporary folder
    recording = {"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(workdir / "recording")}
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | recording,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto_server did not start on {url}")
            time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(timeout=30)


def aws_env(url: str) -> dict[str, str]:
    """Environment that points boto3 at moto's server, with dummy credentials and no AWS config files."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


def upload_tree(
    s3, root: Path, bucket: str, prefix: str, replace: dict[str, bytes | None] | None = None
) -> int:
    """The files under ``root`` into ``s3://bucket/prefix/`` (test-time only); how many.

    ``replace`` maps a file name to other bytes to upload in its place, or to
    None to leave the file out.
    """
    count = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        body = (replace or {}).get(path.name, path.read_bytes())
        if body is not None:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(root)}", Body=body)
            count += 1
    return count


def moto_reset(url: str) -> None:
    """Forget everything moto's server holds."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()


@pytest.fixture
def moto(moto_server, monkeypatch):
    """moto's server emptied, and this process's boto3 pointed at it (dummy credentials); its URL."""
    moto_reset(moto_server)
    for key, value in aws_env(moto_server).items():
        monkeypatch.setenv(key, value)
    return moto_server


@contextlib.contextmanager
def moto_recording(url: str):
    """Record every request moto's server receives in the block; yields a list, filled at the end."""
    recorder = f"{url}/moto-api/recorder"

    def post(step: str) -> None:
        request = urllib.request.Request(f"{recorder}/{step}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    post("reset-recording")
    post("start-recording")
    lines: list[str] = []
    try:
        yield lines
    finally:
        post("stop-recording")
        with urllib.request.urlopen(f"{recorder}/download-recording", timeout=30) as response:
            lines.extend(response.read().decode().splitlines())


@pytest.fixture
def moto_account(moto):
    """An AWS account on moto with what a user brings: a VPC subnet with a route out, a key pair, a bucket.

    Returns the ``cluster`` config keys that use them (with the moto-only
    AMI and suppressed validators: see test_cluster_validation).
    """
    import boto3
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ec2 = boto3.Session().client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24", AvailabilityZone="us-east-1a")
    subnet_id = subnet["Subnet"]["SubnetId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
    public = Ed25519PrivateKey.generate().public_key()
    key = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ec2.import_key_pair(KeyName="astronomer", PublicKeyMaterial=key)
    al2023 = [{"Name": "name", "Values": ["al2023-ami-2023*x86_64"]}]
    image = ec2.describe_images(Owners=["amazon"], Filters=al2023)["Images"][0]["ImageId"]
    boto3.Session().client("s3", region_name="us-east-1").create_bucket(Bucket="rubin-raws")
    return {
        "subnet_id": subnet_id,
        "ssh_key_name": "astronomer",
        "custom_ami": image,
        "allowed_ips": "203.0.113.7/32",
        "data_bucket": "rubin-raws",
        "suppress_validators": MOTO_ONLY_VALIDATORS,
    }


# moto rejects the launch templates pcluster tries in a dry run
MOTO_ONLY_VALIDATORS = ["type:HeadNodeLaunchTemplateValidator", "type:ComputeResourceLaunchTemplateValidator"]
