"""Tests for hear_mn.hub.weights: lookup order, atomic verified downloads, and safe loading."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import pickle
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from support.damaged_files import flip_tensor_byte
from support.local_http import FILE_NAME, LocalServer

import hear_mn.hub.download
import hear_mn.hub.fetch
import hear_mn.hub.locations
from hear_mn.hub.checkpoint import load_into, load_state_dict_file
from hear_mn.hub.download import download_file, sha256_of
from hear_mn.hub.errors import FileError, FileUnavailableError
from hear_mn.hub.locations import cache_dir, offline_dirs
from hear_mn.hub.weights import fetch_weights, resolve_weights
from hear_mn.hub.weights_spec import WeightsSpec

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate every test: private cache, no offline dirs, downloads allowed, no TTY bar."""
    home = tmp_path / "cache"
    monkeypatch.setenv("HEAR_MN_HOME", str(home))
    monkeypatch.delenv("HEAR_MN_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HEAR_MN_OFFLINE", raising=False)
    monkeypatch.delenv("HEAR_MN_QUIET", raising=False)
    monkeypatch.delenv("HEAR_MN_WEIGHTS_MIRROR", raising=False)
    return home


def _tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2).state_dict()


def _save(obj: object, path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path.read_bytes()


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[bytes, str]:
    """A real tiny checkpoint: (file bytes, sha256)."""
    data = _save(_tiny_state(), tmp_path / "src" / FILE_NAME)
    return data, hashlib.sha256(data).hexdigest()


def _closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ok/{FILE_NAME}"


def _files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _assert_removed_naming(error: Exception, path: Path, cache: Path) -> None:
    """The error names the refused cache file, says it was removed, and the cache is empty."""
    assert str(path) in str(error) and "removed" in str(error)
    assert _files_in(cache) == []


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


# --------------------------------------------------------------------------- locations


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("HEAR_MN_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "hear_mn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "hear_mn"


def test_offline_dirs_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert offline_dirs() == []
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", os.pathsep.join([str(tmp_path / "a"), "", "b"]))
    assert offline_dirs() == [tmp_path / "a", Path("b")]


def test_sha256_of(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = bytes(range(256)) * 9000  # > 2 MiB, several blocks
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- resolve / download


def test_download_then_cache_hit(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    data, sha = checkpoint
    server.files[FILE_NAME] = data
    spec = WeightsSpec(FILE_NAME, server.url("ok"), sha256=sha, num_bytes=len(data))

    path = resolve_weights(spec, progress=False)
    assert path == env / FILE_NAME
    assert path.read_bytes() == data
    assert len(server.requests) == 1
    assert _files_in(env) == [FILE_NAME]  # no temporary file left

    again = resolve_weights(spec, progress=False)
    assert again == path
    assert len(server.requests) == 1  # served from the cache
    _assert_same_state(load_state_dict_file(again, spec), _tiny_state())


def test_wrong_sha256_leaves_nothing(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    data, _ = checkpoint
    server.files[FILE_NAME] = data
    spec = WeightsSpec(FILE_NAME, server.url("ok"), sha256="0" * 64)
    with pytest.raises(FileError, match="sha256") as info:
        resolve_weights(spec, progress=False)
    assert not isinstance(info.value, FileUnavailableError)
    assert server.url("ok") in str(info.value)
    assert "0" * 64 in str(info.value)
    assert hashlib.sha256(data).hexdigest() in str(info.value)
    assert _files_in(env) == []


def test_wrong_num_bytes_leaves_nothing(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    data, _ = checkpoint
    server.files[FILE_NAME] = data
    spec = WeightsSpec(FILE_NAME, server.url("ok"), num_bytes=len(data) + 1)
    with pytest.raises(FileError, match="wrong size"):
        resolve_weights(spec, progress=False)
    assert _files_in(env) == []


def test_truncated_download(server: LocalServer, checkpoint: tuple[bytes, str], env: Path) -> None:
    data, _ = checkpoint
    server.files[FILE_NAME] = data
    url = server.url("truncated")
    with pytest.raises(FileError, match="truncated") as info:
        download_file(url, env / FILE_NAME, progress=False)
    message = str(info.value)
    assert url in message
    assert f"got {len(data) // 2} of {len(data) + 1000} bytes" in message
    assert "run again" in message
    assert _files_in(env) == []


def test_truncated_download_via_resolve(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    with pytest.raises(FileError, match="truncated"):
        resolve_weights(WeightsSpec(FILE_NAME, server.url("truncated")), progress=False)
    assert _files_in(env) == []


def test_http_404_is_unavailable(server: LocalServer, env: Path) -> None:
    url = server.url("ok", "missing.pt")
    spec = WeightsSpec("missing.pt", url)
    with pytest.raises(FileUnavailableError) as info:
        resolve_weights(spec, progress=False)
    message = str(info.value)
    assert url in message
    assert str(env) in message
    assert "404" in message
    assert "HEAR_MN_WEIGHTS_DIR" in message
    assert server.requests == ["/ok/missing.pt"]
    assert _files_in(env) == []


def test_connection_refused_is_unavailable(env: Path) -> None:
    url = _closed_port_url()
    with pytest.raises(FileUnavailableError) as info:
        resolve_weights(WeightsSpec(FILE_NAME, url), progress=False)
    assert url in str(info.value)
    assert str(env) in str(info.value)
    assert _files_in(env) == []


def test_offline_env_makes_no_request(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    spec = WeightsSpec(FILE_NAME, server.url("ok"))
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    with pytest.raises(FileUnavailableError, match="HEAR_MN_OFFLINE") as info:
        resolve_weights(spec)
    assert spec.url in str(info.value)
    assert str(env) in str(info.value)
    assert server.requests == []


def test_download_false_makes_no_request(
    server: LocalServer, checkpoint: tuple[bytes, str]
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    with pytest.raises(FileUnavailableError, match="download=False"):
        resolve_weights(WeightsSpec(FILE_NAME, server.url("ok")), download=False)
    assert server.requests == []


def test_offline_dir_is_used_before_cache(
    server: LocalServer,
    checkpoint: tuple[bytes, str],
    env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, sha = checkpoint
    server.files[FILE_NAME] = data
    empty, offline = tmp_path / "empty", tmp_path / "offline"
    empty.mkdir()
    (offline / FILE_NAME).parent.mkdir()
    (offline / FILE_NAME).write_bytes(data)
    (env).mkdir()
    (env / FILE_NAME).write_bytes(data)
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", os.pathsep.join([str(empty), str(offline)]))
    spec = WeightsSpec(FILE_NAME, server.url("ok"), sha256=sha)
    assert resolve_weights(spec) == offline / FILE_NAME
    assert server.requests == []


def test_bad_file_in_offline_dir_is_refused_not_deleted(
    server: LocalServer,
    checkpoint: tuple[bytes, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, sha = checkpoint
    server.files[FILE_NAME] = data
    offline = tmp_path / "offline"
    offline.mkdir()
    bad = offline / FILE_NAME
    bad.write_bytes(b"not the release")
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(offline))
    with pytest.raises(FileError) as info:
        resolve_weights(WeightsSpec(FILE_NAME, server.url("ok"), sha256=sha))
    message = str(info.value)
    assert not isinstance(info.value, FileUnavailableError)
    assert str(bad) in message
    assert sha in message
    assert hashlib.sha256(b"not the release").hexdigest() in message
    assert bad.read_bytes() == b"not the release"
    assert server.requests == []


def test_corrupt_cache_file_is_rejected_offline(
    checkpoint: tuple[bytes, str], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sha = checkpoint
    env.mkdir()
    (env / FILE_NAME).write_bytes(b"garbage")
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    spec = WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never", sha256=sha)
    with pytest.raises(FileError, match="corrupt"):
        resolve_weights(spec)
    assert _files_in(env) == []


def test_corrupt_cache_file_is_replaced_by_download(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, sha = checkpoint
    server.files[FILE_NAME] = data
    env.mkdir()
    (env / FILE_NAME).write_bytes(data[:-10])
    spec = WeightsSpec(FILE_NAME, server.url("ok"), sha256=sha)
    with caplog.at_level(logging.WARNING, logger="hear_mn.hub.fetch"):
        path = resolve_weights(spec, progress=False)
    assert path.read_bytes() == data
    assert len(server.requests) == 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)


def test_file_url_download(checkpoint: tuple[bytes, str], tmp_path: Path, env: Path) -> None:
    data, sha = checkpoint
    src = tmp_path / "src" / FILE_NAME
    dest = tmp_path / "out" / "copy.pt"
    assert download_file(src.as_uri(), dest, sha256=sha, num_bytes=len(data)) == dest
    assert dest.read_bytes() == data
    assert _files_in(dest.parent) == ["copy.pt"]

    path = resolve_weights(WeightsSpec(FILE_NAME, src.as_uri(), sha256=sha), progress=False)
    assert path == env / FILE_NAME
    assert path.read_bytes() == data


def test_missing_file_url_is_unavailable(tmp_path: Path) -> None:
    url = (tmp_path / "nope.pt").as_uri()
    with pytest.raises(FileUnavailableError, match="nope.pt"):
        download_file(url, tmp_path / "out" / "nope.pt")
    assert _files_in(tmp_path / "out") == []


def test_progress_bar_only_when_asked(
    server: LocalServer,
    checkpoint: tuple[bytes, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    data, _ = checkpoint
    server.files[FILE_NAME] = data
    download_file(server.url("ok"), tmp_path / "a.pt", progress=True)
    err = capsys.readouterr().err
    assert "\r" in err
    assert "100%" in err
    assert "a.pt" in err

    download_file(server.url("ok"), tmp_path / "b.pt", progress=False)
    download_file(server.url("ok"), tmp_path / "c.pt")  # None: stderr is not a TTY here
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


# --------------------------------------------------------------------------- loading


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="does not exist") as info:
        load_state_dict_file(tmp_path / "absent.pt")
    assert "absent.pt" in str(info.value)


def test_load_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(FileError) as info:
        load_state_dict_file(path)
    assert str(path) in str(info.value)
    assert "delete it and download it again" in str(info.value)
    assert info.value.__cause__ is not None


def test_load_truncated_checkpoint(checkpoint: tuple[bytes, str], tmp_path: Path) -> None:
    path = tmp_path / "half.pt"
    path.write_bytes(checkpoint[0][: len(checkpoint[0]) // 2])
    with pytest.raises(FileError, match="is damaged: it is truncated"):
        load_state_dict_file(path)


class Payload:
    """A class a safe loader must refuse to instantiate."""

    def __init__(self) -> None:
        self.value = 1


def test_custom_class_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    _save({"weight": torch.zeros(2), "extra": Payload()}, path)
    with pytest.raises(FileError, match="Python objects") as info:
        load_state_dict_file(path)
    assert str(path) in str(info.value)
    assert "Payload" in str(info.value)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_non_tensor_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    _save({"weight": torch.zeros(2), "epoch": 3}, path)
    with pytest.raises(FileError, match="'epoch': int"):
        load_state_dict_file(path)
    _save([torch.zeros(2)], path)
    with pytest.raises(FileError, match="list"):
        load_state_dict_file(path)


def test_state_dict_key_unwrapping(tmp_path: Path) -> None:
    state = _tiny_state()
    path = tmp_path / "wrapped.pt"
    _save({"weights": state, "epoch": 7}, path)
    spec = WeightsSpec("wrapped.pt", "http://unused", state_dict_key="weights")
    _assert_same_state(load_state_dict_file(path, spec), state)

    with pytest.raises(FileError, match="no entry 'model'"):
        load_state_dict_file(
            path, WeightsSpec("wrapped.pt", "http://unused", state_dict_key="model")
        )


@pytest.mark.parametrize("key", ["model_state_dict", "state_dict"])
def test_conventional_wrapper_is_unwrapped(tmp_path: Path, key: str) -> None:
    state = _tiny_state()
    path = tmp_path / "wrapped.pt"
    _save({key: state, "epoch": torch.tensor(3)}, path)
    _assert_same_state(load_state_dict_file(path), state)
    _assert_same_state(load_state_dict_file(path, WeightsSpec("wrapped.pt", "x")), state)


def test_load_into_fits() -> None:
    model = torch.nn.Linear(3, 2)
    state = _tiny_state()
    load_into(model, state, source="tiny.pt")
    _assert_same_state(model.state_dict(), state)


def test_load_into_lists_mismatches() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    state = {
        "0.weight": torch.zeros(4, 3),  # wrong shape
        "0.bias": torch.zeros(2),
        "1.weight": torch.zeros(2, 2),
        # "1.bias" missing
        "head.weight": torch.zeros(1),  # unexpected
    }
    with pytest.raises(FileError) as info:
        load_into(model, state, source="other.pt")
    message = str(info.value)
    assert message.startswith("other.pt")
    assert "different model or width" in message
    assert "1 missing keys" in message and "1.bias" in message
    assert "1 unexpected keys" in message and "head.weight" in message
    assert "0.weight: checkpoint (4, 3) vs model (2, 3)" in message
    assert "0.bias" not in message
    assert not torch.equal(model[0].weight[:, :1], torch.zeros(2, 1))  # model left untouched


def test_load_into_truncates_long_lists() -> None:
    model = torch.nn.Linear(3, 2)
    state = {f"extra.{i}": torch.zeros(1) for i in range(20)} | _tiny_state()
    with pytest.raises(FileError) as info:
        load_into(model, state, source="big.pt")
    message = str(info.value)
    assert "20 unexpected keys" in message
    assert "extra.7" in message
    assert "extra.8" not in message
    assert "and 12 more" in message


# --------------------------------------------------------------------------- fetch_weights


def test_fetch_weights_from_path_warns_on_hash(
    checkpoint: tuple[bytes, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, sha = checkpoint
    user = tmp_path / "user" / FILE_NAME
    user.parent.mkdir()
    user.write_bytes(data)
    spec = WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never", sha256="f" * 64)
    with caplog.at_level(logging.WARNING, logger="hear_mn.hub.weights"):
        state = fetch_weights(spec, str(user))
    _assert_same_state(state, _tiny_state())
    assert any("sha256" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hear_mn.hub.weights"):
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never", sha256=sha), user)
    assert caplog.records == []


def test_fetch_weights_resolves_release(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    data, sha = checkpoint
    server.files[FILE_NAME] = data
    spec = WeightsSpec(FILE_NAME, server.url("ok"), sha256=sha)
    _assert_same_state(fetch_weights(spec, "", progress=False), _tiny_state())
    _assert_same_state(fetch_weights(spec, None), _tiny_state())
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- damaged checkpoints


def test_flip_tensor_byte_still_loads_with_torch(checkpoint: tuple[bytes, str], tmp_path: Path):
    """The damage the checks below must catch: torch itself loads the file without complaint."""
    path = tmp_path / "flipped.pt"
    path.write_bytes(flip_tensor_byte(checkpoint[0]))
    loaded = torch.load(path, weights_only=True)
    assert not all(torch.equal(loaded[k], v) for k, v in _tiny_state().items())


def test_download_with_a_flipped_tensor_byte_is_refused(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    server.files[FILE_NAME] = flip_tensor_byte(checkpoint[0])
    spec = WeightsSpec(FILE_NAME, server.url("ok"))  # no SHA-256 on record, like EfficientAT
    with pytest.raises(FileError, match="CRC") as info:
        fetch_weights(spec, progress=False)
    assert server.url("ok") in str(info.value)
    assert _files_in(env) == []


def test_corrupt_cached_file_without_hash_is_removed_naming_it(
    checkpoint: tuple[bytes, str], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.mkdir()
    cached = env / FILE_NAME
    cached.write_bytes(flip_tensor_byte(checkpoint[0]))
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    with pytest.raises(FileError, match="CRC") as info:
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never"))
    _assert_removed_naming(info.value, cached, env)


def test_corrupt_file_in_weights_dir_is_refused_not_deleted(
    checkpoint: tuple[bytes, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline = tmp_path / "offline"
    offline.mkdir()
    damaged = flip_tensor_byte(checkpoint[0])
    (offline / FILE_NAME).write_bytes(damaged)
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(offline))
    with pytest.raises(FileError, match="CRC") as info:
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never"))
    assert str(offline / FILE_NAME) in str(info.value)
    assert "removed" not in str(info.value)
    assert (offline / FILE_NAME).read_bytes() == damaged


def test_corrupt_user_path_is_refused_not_deleted(
    checkpoint: tuple[bytes, str], tmp_path: Path
) -> None:
    user = tmp_path / "mine.pt"
    user.write_bytes(flip_tensor_byte(checkpoint[0]))
    with pytest.raises(FileError, match="CRC"):
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never"), user)
    assert user.exists()


def test_first_verified_copy_is_recorded_and_checked_later(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, sha = checkpoint
    server.files[FILE_NAME] = data
    spec = WeightsSpec(FILE_NAME, server.url("ok"))
    fetch_weights(spec, progress=False)
    sidecar = env / f"{FILE_NAME}.sha256"
    assert sidecar.read_text().split()[0] == sha
    # A different, intact checkpoint under the same name: its CRCs are fine, its hash is not.
    torch.save({k: v + 1 for k, v in _tiny_state().items()}, env / FILE_NAME)
    with caplog.at_level(logging.WARNING, logger="hear_mn.hub.fetch"):
        _assert_same_state(fetch_weights(spec, progress=False), _tiny_state())
    assert len(server.requests) == 2  # the changed copy was removed and downloaded again
    assert any(str(env / FILE_NAME) in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize(
    "error",
    [PermissionError(errno.EACCES, os.strerror(errno.EACCES)), OSError(errno.EIO, "I/O error")],
    ids=["EACCES", "EIO"],
)
def test_unreadable_cached_file_is_kept_and_reported(
    checkpoint: tuple[bytes, str], env: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    env.mkdir()
    cached = env / FILE_NAME
    cached.write_bytes(checkpoint[0])

    real_open = os.open

    def cannot_read(path: object, *args: object, **kwargs: object) -> int:
        if Path(path) == cached:  # type: ignore[arg-type]
            raise type(error)(error.errno, error.strerror, str(cached))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", cannot_read)
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    with pytest.raises(FileError) as info:
        fetch_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never"))
    assert cached.read_bytes() == checkpoint[0]  # not deleted
    message = str(info.value)
    assert str(cached) in message
    assert error.strerror in message
    assert "permissions" in message  # what to do
    assert "corrupt" not in message


def test_io_error_while_checking_a_cached_file_is_reported(
    checkpoint: tuple[bytes, str], env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, sha = checkpoint
    env.mkdir()
    (env / FILE_NAME).write_bytes(data)

    def failing_disk(path: Path, kind: str) -> bytes:
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(hear_mn.hub.fetch, "read_regular_file", failing_disk)
    with pytest.raises(FileError, match="Input/output error") as info:
        resolve_weights(WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never", sha256=sha))
    assert str(env / FILE_NAME) in str(info.value)
    assert (env / FILE_NAME).read_bytes() == data


# --------------------------------------------------------------------------- wrong files


def _refuse_all(state_dict: dict[str, torch.Tensor], *, source: str) -> None:
    raise FileError(f"{source}: checkpoint does not fit the model")


def test_fetch_weights_verify_failure_removes_the_cached_file(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    spec = WeightsSpec(FILE_NAME, server.url("ok"))
    with pytest.raises(FileError, match="does not fit") as info:
        fetch_weights(spec, progress=False, verify=_refuse_all)
    _assert_removed_naming(info.value, env / FILE_NAME, env)


def test_fetch_weights_verify_failure_never_deletes_user_files(
    checkpoint: tuple[bytes, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / FILE_NAME).write_bytes(checkpoint[0])
    spec = WeightsSpec(FILE_NAME, "http://127.0.0.1:9/never")
    for path in (offline / FILE_NAME, None):
        monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(offline))
        with pytest.raises(FileError, match="does not fit") as info:
            fetch_weights(spec, path, verify=_refuse_all)
        assert "removed" not in str(info.value)
        assert (offline / FILE_NAME).read_bytes() == checkpoint[0]


def test_fetch_weights_verify_is_given_the_state_dict(checkpoint: tuple[bytes, str], tmp_path):
    user = tmp_path / "mine.pt"
    user.write_bytes(checkpoint[0])
    seen: list[tuple[dict[str, torch.Tensor], str]] = []
    state = fetch_weights(
        WeightsSpec(FILE_NAME, "http://unused"),
        user,
        verify=lambda state_dict, *, source: seen.append((state_dict, source)),
    )
    assert seen == [(state, str(user))]


# --------------------------------------------------------------------------- unsafe pickles


class SystemCall:
    """Pickles to ``os.system(command)``: what a malicious checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
@pytest.mark.parametrize(
    ("protocol", "zip_format"),
    [(2, True), (4, True), (2, False)],
    ids=["zip, protocol 2", "zip, protocol 4", "legacy format"],
)
def test_code_in_a_checkpoint_is_refused_and_never_runs(
    tmp_path: Path, protocol: int, zip_format: bool
) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.zeros(2), "x": SystemCall(f"touch {marker}")}
    torch.save(payload, path, pickle_protocol=protocol, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(FileError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert "contains Python objects other than tensors" in message
    assert "refused" in message and "safety" in message
    assert "system" in message  # names the global it refused
    assert str(path) in message
    assert "weights_only" not in message  # not torch's own advice to turn the check off
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()


def test_code_in_a_cached_download_is_refused_and_removed(
    server: LocalServer, tmp_path: Path, env: Path
) -> None:
    marker = tmp_path / "code_ran"
    data = _save({"x": SystemCall(f"touch {marker}")}, tmp_path / "src" / "evil.pt")
    server.files[FILE_NAME] = data
    with pytest.raises(FileError, match="Python objects other than tensors"):
        fetch_weights(WeightsSpec(FILE_NAME, server.url("ok")), progress=False)
    assert not marker.exists()
    assert _files_in(env) == []


# --------------------------------------------------------------------------- cache directory


@pytest.mark.parametrize("what", ["file", "directory"])
def test_read_only_cache_dir_names_the_directory_and_what_to_do(
    server: LocalServer,
    checkpoint: tuple[bytes, str],
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    if what == "file":
        env.mkdir()
    real_open, real_mkdir = os.open, os.mkdir

    def read_only_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT and Path(os.fspath(path)).parent == env:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    def read_only_mkdir(path: object, *args: object, **kwargs: object) -> None:
        if Path(os.fspath(path)) == env:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(os, "mkdir", read_only_mkdir)
    with pytest.raises(FileError) as info:
        fetch_weights(WeightsSpec(FILE_NAME, server.url("ok")), progress=False)
    message = str(info.value)
    assert f"cannot write to the weights cache directory {env}" in message
    assert os.strerror(errno.EACCES) in message
    assert "HEAR_MN_HOME" in message and "HEAR_MN_WEIGHTS_DIR" in message
    assert ".part" not in message
    monkeypatch.undo()
    assert _files_in(env) == []


# --------------------------------------------------------------------------- file modes


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)], ids=["umask 022", "umask 027"]
)
def test_downloaded_files_honour_the_umask(
    server: LocalServer, checkpoint: tuple[bytes, str], env: Path, umask: None, mask: int, mode: int
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    os.umask(mask)
    fetch_weights(WeightsSpec(FILE_NAME, server.url("ok")), progress=False)
    assert sorted(_files_in(env)) == [FILE_NAME, f"{FILE_NAME}.sha256"]
    for name in _files_in(env):
        assert stat.S_IMODE((env / name).stat().st_mode) == mode, name


# --------------------------------------------------------------------------- progress bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_tqdm_on_stderr(
    server: LocalServer,
    checkpoint: tuple[bytes, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    server.files[FILE_NAME] = checkpoint[0]
    bars: list[dict[str, object]] = []
    real_tqdm = hear_mn.hub.download.tqdm

    def recording_tqdm(*args: object, **kwargs: object) -> object:
        bars.append(kwargs)
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(hear_mn.hub.download, "tqdm", recording_tqdm)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    download_file(server.url("ok"), tmp_path / "a.pt")  # a terminal: shown
    assert bars[-1]["file"] is terminal and not bars[-1]["disable"]
    assert "a.pt" in terminal.getvalue() and "100%" in terminal.getvalue()

    monkeypatch.setenv("HEAR_MN_QUIET", "1")
    shown = terminal.getvalue()
    download_file(server.url("ok"), tmp_path / "b.pt")  # quiet: hidden
    assert bars[-1]["disable"] and terminal.getvalue() == shown
    download_file(server.url("ok"), tmp_path / "c.pt", progress=True)  # asked: shown
    assert not bars[-1]["disable"] and "c.pt" in terminal.getvalue()
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- prefixes and wrappers


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state.items()}


@pytest.mark.parametrize("prefix", ["backbone.", "module.", "module.backbone.", "model."])
def test_load_into_strips_a_common_prefix(prefix: str) -> None:
    model = torch.nn.Linear(3, 2)
    load_into(model, _prefixed(_tiny_state(), prefix), source="prefixed.pt")
    _assert_same_state(model.state_dict(), _tiny_state())


@pytest.mark.parametrize("key", ["model", "state_dict", "model_state_dict"])
def test_common_wrappers_with_data_parallel_prefix_load(tmp_path: Path, key: str) -> None:
    path = tmp_path / "wrapped.pt"
    _save({key: _prefixed(_tiny_state(), "module."), "epoch": torch.tensor(3)}, path)
    model = torch.nn.Linear(3, 2)
    load_into(model, load_state_dict_file(path), source=str(path))
    _assert_same_state(model.state_dict(), _tiny_state())


def test_load_into_names_the_prefix_found_and_expected() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(FileError) as info:
        load_into(model, _prefixed(_tiny_state(), "encoder."), source="other.pt")
    message = str(info.value)
    assert "keys start with 'encoder.'" in message
    assert "expects keys like '0.weight'" in message
    assert len(message.splitlines()) <= 12


# --------------------------------------------------------------------------- shipped checkpoints


def _kwmlp_spec() -> WeightsSpec:
    from hear_mn.registry import CHECKPOINTS

    return CHECKPOINTS["kwmlp"].weights


def test_lookup_order_weights_dir_then_package_then_cache(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _kwmlp_spec()
    shipped = hear_mn.hub.locations.PACKAGED_DIR / spec.file_name
    env.mkdir()
    (env / spec.file_name).write_bytes(b"a stale cached copy")
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    assert resolve_weights(spec) == shipped  # the package before the cache
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / spec.file_name).write_bytes(shipped.read_bytes())
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(offline))
    assert resolve_weights(spec) == offline / spec.file_name  # the user's folder first
    assert (env / spec.file_name).read_bytes() == b"a stale cached copy"  # never looked at


def test_damaged_shipped_file_is_refused_not_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _kwmlp_spec()
    damaged = tmp_path / "checkpoints" / spec.file_name
    damaged.parent.mkdir()
    damaged.write_bytes(b"damaged")
    monkeypatch.setattr(hear_mn.hub.locations, "PACKAGED_DIR", damaged.parent)
    with pytest.raises(FileError, match="reinstall") as info:
        fetch_weights(spec, download=False)
    assert str(damaged) in str(info.value)
    assert damaged.read_bytes() == b"damaged"


# --------------------------------------------------------------------------- hub: other files


def test_hub_does_not_import_torch() -> None:
    """Only ``hub.checkpoint`` and ``hub.weights`` load torch: the families' tables, the
    lookup, downloads and ``hear-mn list`` do not."""
    code = (
        "import sys, hear_mn.hub.fetch, hear_mn.hub.weights_spec; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
