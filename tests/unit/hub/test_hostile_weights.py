"""Hostile weights, caches and downloads (issue 21, items 5, 7, 10, 11, 14 and 15): files
swapped after their check, impostor releases, servers that lie, never end or trickle,
truncated checkpoints, paths too long, malicious plain pickles, and weights "files" that
are directories, FIFOs or devices. A local 127.0.0.1 server imitates both the release files
and GitHub's "get a release" REST API (tests/support/local_http.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import threading
import time
from pathlib import Path

import pytest
import torch
from support.local_http import FILE_NAME, RELEASE_URL, LocalServer

from hear_mn.cli import main as cli_main
from hear_mn.hub.checkpoint import load_state_dict_file
from hear_mn.hub.errors import BadFileError, FileError
from hear_mn.hub.weights import fetch_weights, resolve_weights
from hear_mn.hub.weights_spec import WeightsSpec


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, no offline dirs, downloads allowed, no mirror, GitHub's API unset."""
    home = tmp_path / "cache"
    monkeypatch.setenv("HEAR_MN_HOME", str(home))
    for name in (
        "HEAR_MN_WEIGHTS_DIR",
        "HEAR_MN_OFFLINE",
        "HEAR_MN_WEIGHTS_MIRROR",
        "HEAR_MN_GITHUB_API",
        "HEAR_MN_DOWNLOAD_MAX_BYTES",
        "HEAR_MN_DOWNLOAD_MIN_RATE",
        "HEAR_MN_DOWNLOAD_RATE_WINDOW",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def release(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """The local server standing in for github.com (a mirror) and api.github.com."""
    monkeypatch.setenv("HEAR_MN_WEIGHTS_MIRROR", server.url("ok", ""))
    monkeypatch.setenv("HEAR_MN_GITHUB_API", server.api)
    return server


def _state(offset: float = 0.0, size: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v + offset for k, v in torch.nn.Linear(size, 2).state_dict().items()}


def _bytes(state: dict[str, torch.Tensor], tmp_path: Path, name: str = "src.pt") -> bytes:
    path = tmp_path / "sources" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path.read_bytes()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _record(cache: Path, name: str = FILE_NAME) -> str:
    return (cache / f"{name}.sha256").read_text()


# --------------------------------------------------------------------------- item 5: race


def test_cached_weights_load_the_very_bytes_that_were_verified(
    server: LocalServer, tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process swaps the cached file right after its hash is computed: the bytes
    that were hashed are the ones loaded, never the impostor."""
    server.files[FILE_NAME] = _bytes(_state(), tmp_path)
    spec = WeightsSpec(FILE_NAME, server.url("ok"))
    assert _same(fetch_weights(spec, progress=False), _state())  # cached, hash recorded
    impostor = _bytes(_state(offset=1.0), tmp_path, "impostor.pt")
    real_sha256 = hashlib.sha256
    swapped = []

    class SwappingHash:
        """hashlib.sha256, but the cached file is replaced as soon as a digest is read."""

        def __init__(self, *args: bytes) -> None:
            self._hash = real_sha256(*args)

        def update(self, data: bytes) -> None:
            self._hash.update(data)

        def hexdigest(self) -> str:
            if not swapped:
                swapped.append(True)
                (tmp_path / "swap.pt").write_bytes(impostor)
                os.replace(tmp_path / "swap.pt", env / FILE_NAME)
            return self._hash.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", SwappingHash)
    loaded = fetch_weights(spec, progress=False)
    assert swapped
    assert _same(loaded, _state()), "the swapped-in impostor was loaded"


# --------------------------------------------------------------------------- item 7: pinning


def test_a_download_is_verified_against_the_published_digest(
    release: LocalServer, tmp_path: Path, env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = release.publish(FILE_NAME, _bytes(_state(), tmp_path))
    with caplog.at_level(logging.INFO, logger="hear_mn"):
        state = fetch_weights(WeightsSpec(FILE_NAME, url), progress=False)
    assert _same(state, _state())
    assert f"/ok/{FILE_NAME}" in release.requests  # from the mirror
    assert "/api/repos/someone/models/releases/tags/v1" in release.requests
    assert "published" in _record(env)
    assert any("published digest" in r.getMessage() for r in caplog.records)


def test_a_download_with_another_digest_is_refused_and_nothing_is_cached(
    release: LocalServer, tmp_path: Path, env: Path
) -> None:
    wrong = "sha256:" + "ab" * 32
    url = release.publish(FILE_NAME, _bytes(_state(), tmp_path), digest=wrong)
    with pytest.raises(BadFileError, match="published digest") as info:
        fetch_weights(WeightsSpec(FILE_NAME, url), progress=False)
    assert "ab" * 32 in str(info.value)
    assert _files_in(env) == []


def test_an_impostor_release_file_is_refused_by_its_digest(
    release: LocalServer, tmp_path: Path, env: Path
) -> None:
    """The impostor has the right shapes and intact CRCs: only the digest can tell."""
    url = release.publish(FILE_NAME, _bytes(_state(), tmp_path))
    release.files[FILE_NAME] = _bytes(_state(offset=1.0), tmp_path, "impostor.pt")
    with pytest.raises(BadFileError, match="published digest"):
        fetch_weights(WeightsSpec(FILE_NAME, url), progress=False)
    assert _files_in(env) == []


@pytest.mark.parametrize("failure", ["API down", "asset without digest", "API turned off"])
def test_without_a_published_digest_the_first_download_is_trusted_with_a_warning(
    release: LocalServer,
    tmp_path: Path,
    env: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    url = release.publish(FILE_NAME, _bytes(_state(), tmp_path), digest=None)
    if failure == "API down":
        release.api_status = 503
    elif failure == "API turned off":
        monkeypatch.setenv("HEAR_MN_GITHUB_API", "off")
    with caplog.at_level(logging.WARNING, logger="hear_mn"):
        assert _same(fetch_weights(WeightsSpec(FILE_NAME, url), progress=False), _state())
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "trust" in warnings and "first use" in warnings
    assert "first use" in _record(env)
    api_asked = "/api/repos/someone/models/releases/tags/v1" in release.requests
    assert api_asked == (failure != "API turned off")


def test_the_api_defaults_to_github_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    from hear_mn.hub import published

    assert published.DEFAULT_API == "https://api.github.com"
    assert published.api_base() == "https://api.github.com"
    monkeypatch.setenv("HEAR_MN_GITHUB_API", "http://127.0.0.1:1/api/")
    assert published.api_base() == "http://127.0.0.1:1/api"
    asset = published.release_asset(RELEASE_URL + "x.pt")
    assert asset is not None and asset.api_url.endswith("/repos/someone/models/releases/tags/v1")
    assert published.release_asset("https://example.org/x.pt") is None


def test_every_efficientat_and_dymn_file_is_a_github_release_asset() -> None:
    from hear_mn.config import CHECKPOINTS
    from hear_mn.hub import published

    for checkpoint in CHECKPOINTS.values():
        if checkpoint.family in ("mobilenet", "dymn"):
            asset = published.release_asset(checkpoint.weights.url)
            assert asset is not None and asset.name == checkpoint.weights.file_name


def test_list_says_which_files_are_pinned_published_or_first_use(
    release: LocalServer, tmp_path: Path, env: Path, capsys: pytest.CaptureFixture
) -> None:
    from hear_mn.registry import get_config

    spec = get_config("mn01_all_b_mel_avgs").weights
    assert spec.url == release.publish(
        spec.file_name, _bytes(_state(), tmp_path), repo="fschmid56/EfficientAT", tag="v0.0.1"
    )
    resolve_weights(spec, progress=False)
    assert cli_main(["list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["mn01_all_b_mel_avgs"]["weights_integrity"] == "published digest"
    assert rows["kwmlp"]["weights_integrity"] == "pinned"
    assert rows["mn10_e1_l"]["weights_integrity"] == "unpinned"
    assert cli_main(["list"]) == 0
    table = capsys.readouterr()
    assert "published digest" in table.out  # the column
    assert "trust on first use" in table.err  # the legend


# --------------------------------------------------------------------------- item 10: downloads


def test_a_body_without_length_is_capped_by_the_known_size(server: LocalServer, env: Path) -> None:
    server.files[FILE_NAME] = b"x"
    spec = WeightsSpec(FILE_NAME, server.url("endless"), num_bytes=1000)
    started = time.monotonic()
    with pytest.raises(BadFileError, match="more than the expected 1000 bytes"):
        resolve_weights(spec, progress=False)
    assert time.monotonic() - started < 3
    assert _files_in(env) == []


def test_a_body_without_length_is_capped_overall(
    server: LocalServer, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEAR_MN_DOWNLOAD_MAX_BYTES", str(1 << 20))
    server.files[FILE_NAME] = b"x"
    with pytest.raises(BadFileError, match="more than 1048576 bytes.*HEAR_MN_DOWNLOAD_MAX"):
        resolve_weights(WeightsSpec(FILE_NAME, server.url("endless")), progress=False)
    assert _files_in(env) == []


def test_an_announced_length_beyond_the_known_size_is_refused_before_reading(
    server: LocalServer, env: Path
) -> None:
    server.files[FILE_NAME] = bytes(5000)
    with pytest.raises(BadFileError, match="announces 5000 bytes.*expected 1000"):
        resolve_weights(WeightsSpec(FILE_NAME, server.url("ok"), num_bytes=1000), progress=False)
    assert _files_in(env) == []


def test_a_trickling_server_is_cut_off(
    server: LocalServer, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte every 0.2 s for 30 bytes: the old per-read timeout waited 6 s for it all."""
    monkeypatch.setenv("HEAR_MN_DOWNLOAD_MIN_RATE", "100")
    monkeypatch.setenv("HEAR_MN_DOWNLOAD_RATE_WINDOW", "0.5")
    server.files[FILE_NAME] = bytes(1000)
    server.trickle_limit = 30
    started = time.monotonic()
    with pytest.raises(FileError, match="too slow") as info:
        resolve_weights(WeightsSpec(FILE_NAME, server.url("trickle")), progress=False)
    assert time.monotonic() - started < 3
    assert "HEAR_MN_DOWNLOAD_MIN_RATE" in str(info.value)
    assert _files_in(env) == []


# --------------------------------------------------------------------------- item 11: truncation


@pytest.fixture
def big_checkpoint(tmp_path: Path) -> bytes:
    return _bytes(_state(size=300), tmp_path, "big.pt")


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 0.999])
def test_a_truncated_checkpoint_is_called_truncated_not_unreadable(
    big_checkpoint: bytes, tmp_path: Path, fraction: float
) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(big_checkpoint[: int(len(big_checkpoint) * fraction)])
    with pytest.raises(BadFileError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert "truncated" in message and str(path) in message
    assert "permission" not in message and "EINVAL" not in message


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.999])
def test_a_truncated_cached_copy_is_evicted_and_downloaded_again(
    server: LocalServer, big_checkpoint: bytes, env: Path, fraction: float
) -> None:
    server.files[FILE_NAME] = big_checkpoint
    env.mkdir()
    (env / FILE_NAME).write_bytes(big_checkpoint[: int(len(big_checkpoint) * fraction)])
    state = fetch_weights(WeightsSpec(FILE_NAME, server.url("ok")), progress=False)
    assert _same(state, _state(size=300))
    assert server.requests == [f"/ok/{FILE_NAME}"]
    assert (env / FILE_NAME).read_bytes() == big_checkpoint


# --------------------------------------------------------------------------- item 14: long paths


def test_a_weights_path_too_long_for_the_system_is_explained(tmp_path: Path) -> None:
    path = tmp_path / ("w" * 300 + ".pt")
    with pytest.raises(FileError, match="too long") as info:
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never"), path)
    assert "File name too long" not in str(info.value).split("(")[0]
    deep = Path("/".join(["d" * 200] * 30))
    with pytest.raises(FileError, match="too long"):
        load_state_dict_file(deep)


def test_a_cache_directory_too_long_for_the_system_is_explained(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.mkdir()
    monkeypatch.setenv("HEAR_MN_HOME", str(env / ("c" * 300)))
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    with pytest.raises(FileError, match="too long"):
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never"))


# --------------------------------------------------------------------------- item 15: small lies


class SystemCall:
    """Pickles to ``os.system(command)``: what a malicious checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_a_malicious_plain_pickle_is_refused_as_unsafe(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.zeros(2), "x": SystemCall(f"touch {marker}")}
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(BadFileError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert "refused for safety" in message and "system" in message
    assert "corrupt" not in message
    assert not marker.exists()


def test_a_directory_given_as_weights_is_called_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="is a directory") as info:
        load_state_dict_file(tmp_path)
    assert "does not exist" not in str(info.value)


def _refused_within(seconds: float, path: Path) -> FileError:
    """The error for loading ``path``, which must come within ``seconds`` (never a hang)."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            load_state_dict_file(path)
        except BaseException as error:  # noqa: BLE001  (handed to the test's thread)
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"loading {path} still had not returned after {seconds} s"
    assert isinstance(outcome[0], FileError), outcome[0]
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_given_as_weights_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    message = str(_refused_within(3, fifo))
    assert "not a regular file" in message and "FIFO" in message
    assert "does not exist" not in message


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_dev_zero_given_as_weights_is_refused_at_once() -> None:
    message = str(_refused_within(3, Path("/dev/zero")))
    assert "not a regular file" in message and "device" in message
    assert "does not exist" not in message
