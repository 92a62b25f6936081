"""Tables and images behind URLs: a real S3 API (moto's server) and an HTTP server, both local.

Nothing here reaches the network: moto serves S3 on 127.0.0.1 (as s3fs's own
tests do) and `http.server` serves the same files for `http://` URLs.
"""

from __future__ import annotations

import http.server
import os
import re
import select
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import RECTS, numpy_batch, write_scene

from keras_roi_datagen import storage
from keras_roi_datagen.errors import ImageReadError, StorageError

pytest.importorskip("fsspec", reason="the storage tests need fsspec (the `storage` extra)")
moto_server = pytest.importorskip("moto.server", reason="the S3 tests need moto[server]")
s3fs = pytest.importorskip("s3fs", reason="the S3 tests need s3fs")

BUCKET = "roi-test"
BOX_COLS = ("x", "y", "w", "h")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dataset_files(folder: Path) -> Path:
    """Three JPEG scenes and a CSV table of their rectangles (numeric box columns)."""
    rows = []
    for i in range(3):
        write_scene(folder / "images" / f"scene_{i}.jpg", "JPEG")
        for label, x, y, w, h in RECTS:
            rows.append({"filename": f"images/scene_{i}.jpg", "x": x + 3, "y": y + 3,
                         "w": w - 6, "h": h - 6, "name": label, "type": "dark"})
    table = folder / "table.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


@pytest.fixture(scope="module")
def local_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("remote-data")
    _dataset_files(folder)
    return folder


@pytest.fixture(scope="module")
def s3(local_data: Path) -> Iterator[dict[str, Any]]:
    """moto's S3 server on a free local port, with the dataset uploaded; yields storage_options."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    options = {"key": "testing", "secret": "testing", "skip_instance_cache": True,
               "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}",
                                 "region_name": "eu-west-1"}}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(BUCKET)
    for path in local_data.rglob("*"):
        if path.is_file():
            fs.pipe_file(f"{BUCKET}/data/{path.relative_to(local_data).as_posix()}",
                         path.read_bytes())
    yield options
    server.stop()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; `/flaky<k>/...` fails `k` times per path, `/denied/...` always 403.

    `/flaky<k>-<tag>/...` is the same with paths of its own (one tag per test).
    """

    failures: ClassVar[dict[str, int]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _refuse(self) -> bool:
        parts = self.path.split("/")
        if len(parts) > 1 and parts[1] == "denied":
            self.send_error(403, "Forbidden")
            return True
        if len(parts) > 1 and parts[1].startswith("flaky"):
            budget = int(parts[1][5:].split("-")[0])
            seen = self.failures.get(self.path, 0)
            self.failures[self.path] = seen + 1
            if seen < budget:
                self.send_error(503, "Service Unavailable")
                return True
            self.path = "/" + "/".join(parts[2:])
        return False

    def do_GET(self) -> None:
        if not self._refuse():
            super().do_GET()

    def do_HEAD(self) -> None:
        parts = self.path.split("/")
        if len(parts) > 1 and parts[1].startswith("flaky"):
            self.path = "/" + "/".join(parts[2:])  # only reads are flaky
        if not (len(parts) > 1 and parts[1] == "denied" and self._refuse()):
            super().do_HEAD()


@pytest.fixture(scope="module")
def http_url(local_data: Path) -> Iterator[str]:
    def handler(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=str(local_data), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(storage, "RETRY", storage.Retry(attempts=4, initial_delay=0.01))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # URL tables' copies


def _dataset(table: Any, **kwargs: Any) -> Any:
    from keras_roi_datagen import RoiDataset

    kwargs.setdefault("workers", 1)
    return RoiDataset(table, box_cols=BOX_COLS, image_size=(24, 24), batch_size=6, seed=5,
                      **kwargs)


def _all_batches(ds: Any) -> list[Any]:
    return [numpy_batch(ds[i]) for i in range(len(ds))]


def _assert_same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        for head_a, head_b in zip(ya, yb):
            np.testing.assert_array_equal(head_a, head_b)


def test_s3_table_and_images_give_the_local_batches(s3: dict[str, Any], local_data: Path) -> None:
    remote = _dataset(f"s3://{BUCKET}/data/table.csv", storage_options=s3)
    assert remote.index.path_of(0).startswith(f"s3://{BUCKET}/data/images/")
    _assert_same(_all_batches(remote), _all_batches(_dataset(local_data / "table.csv")))


def test_s3_images_with_a_local_table(s3: dict[str, Any], local_data: Path) -> None:
    remote = _dataset(local_data / "table.csv", image_dir=f"s3://{BUCKET}/data",
                      storage_options=s3)
    _assert_same(_all_batches(remote), _all_batches(_dataset(local_data / "table.csv")))


def test_s3_validate_reads_headers(s3: dict[str, Any]) -> None:
    ds = _dataset(f"s3://{BUCKET}/data/table.csv", storage_options=s3)
    report = ds.validate(progress=False)
    assert report.ok and report.n_images == 3 and report.retries == 0


def test_simplecache_chaining(s3: dict[str, Any], local_data: Path) -> None:
    options = {"s3": s3}
    remote = _dataset(local_data / "table.csv", image_dir=f"simplecache::s3://{BUCKET}/data",
                      storage_options=options)
    assert remote.index.path_of(0).startswith("simplecache::s3://")
    _assert_same(_all_batches(remote), _all_batches(_dataset(local_data / "table.csv")))


def test_missing_s3_key_names_the_url(s3: dict[str, Any], local_data: Path, tmp_path: Path) -> None:
    table = pd.read_csv(local_data / "table.csv")
    table.loc[2, "filename"] = "images/not_there.jpg"
    ds = _dataset(table, image_dir=f"s3://{BUCKET}/data", storage_options=s3, shuffle=False)
    with pytest.raises(ImageReadError, match=re.escape(f"s3://{BUCKET}/data/images/not_there.jpg")):
        ds[0]
    with pytest.raises(StorageError, match=re.escape(f"s3://{BUCKET}/data/nope.csv: not found")) as info:
        _dataset(f"s3://{BUCKET}/data/nope.csv", storage_options=s3)
    assert info.value.kind == "storage_not_found" and info.value.url.endswith("nope.csv")


def test_missing_key_is_skipped_and_reported(s3: dict[str, Any], local_data: Path) -> None:
    table = pd.read_csv(local_data / "table.csv")
    table.loc[2, "filename"] = "images/not_there.jpg"
    ds = _dataset(table, image_dir=f"s3://{BUCKET}/data", storage_options=s3, on_error="skip")
    report = ds.validate(progress=False)
    assert [p.kind for p in report.errors] == ["missing_file"]
    assert len(ds.index) == len(table) - 1


def test_unknown_bucket_names_the_url(s3: dict[str, Any]) -> None:
    with pytest.raises(StorageError, match=re.escape("s3://no-such-bucket/t.csv: not found")):
        _dataset("s3://no-such-bucket/t.csv", storage_options=s3)


def test_denied_url_names_the_url(http_url: str, local_data: Path) -> None:
    table = pd.read_csv(local_data / "table.csv")
    ds = _dataset(table, image_dir=f"{http_url}/denied", shuffle=False)
    with pytest.raises(StorageError, match=re.escape(f"{http_url}/denied/images/scene_0.jpg: access denied")):
        storage.read_bytes(ds.index.path_of(0))
    with pytest.raises(StorageError, match=re.escape("access denied")) as info:
        ds[0]
    assert info.value.problems[0].kind == "storage_denied"


def test_http_table_and_images(http_url: str, local_data: Path) -> None:
    remote = _dataset(f"{http_url}/table.csv")
    _assert_same(_all_batches(remote), _all_batches(_dataset(local_data / "table.csv")))


def test_flaky_server_succeeds_after_retries(http_url: str, local_data: Path) -> None:
    table = pd.read_csv(local_data / "table.csv")
    before = storage.retry_count()
    ds = _dataset(table, image_dir=f"{http_url}/flaky2", shuffle=False)
    report = ds.validate(progress=False)
    assert report.ok
    assert report.retries == 2 * 3  # two failures for each of the three images
    assert storage.retry_count() - before == 6
    assert "6 requests to URLs retried" in report.summary()


def test_flaky_server_that_never_recovers(http_url: str, local_data: Path) -> None:
    url = f"{http_url}/flaky9/images/scene_1.jpg"
    with pytest.raises(StorageError, match=re.escape(f"{url}: read failed after 4 attempts")) as info:
        storage.read_bytes(url)
    assert info.value.attempts == 4 and info.value.kind == "storage_failed"


def test_filesystems_are_per_process(s3: dict[str, Any]) -> None:
    fs, path = storage.filesystem(f"s3://{BUCKET}/data/table.csv", s3)
    again, _ = storage.filesystem(f"s3://{BUCKET}/data/table.csv", s3)
    assert again is fs and path == f"{BUCKET}/data/table.csv"
    key = next(iter(k for k in storage._FILESYSTEMS if k[1] == "s3"))
    assert key[0] == os.getpid()
    # A forked child sees another pid: the parent's object is dropped, never reused.
    storage._FILESYSTEMS[(-1, "s3", key[2])] = storage._FILESYSTEMS.pop(key)
    fresh, _ = storage.filesystem(f"s3://{BUCKET}/data/table.csv", s3)
    assert all(k[0] == os.getpid() for k in storage._FILESYSTEMS)
    assert fresh is not None


def test_url_tables_are_copied_into_the_cache_folder(http_url: str, tmp_path: Path) -> None:
    _dataset(f"{http_url}/table.csv")
    copies = os.listdir(tmp_path / "xdg-cache" / "keras_roi_datagen" / "tables")
    assert len(copies) == 1 and copies[0].endswith("-table.csv")


def test_url_helpers() -> None:
    assert storage.url_join("s3://b/images", "../../x.jpg") == "s3://b/x.jpg"
    assert storage.url_join("https://h:8/a/", "b/c.jpg") == "https://h:8/a/b/c.jpg"
    assert storage.url_dirname("gs://b/d/t.parquet") == "gs://b/d"
    assert storage.is_url("simplecache::s3://b/k") and not storage.is_url("C:/x.jpg")


def test_path_outside_a_url_image_dir_is_refused(local_data: Path) -> None:
    from keras_roi_datagen.paths import PathProblem, resolve_image_path

    found = resolve_image_path("../other/a.jpg", "s3://b/images")
    assert isinstance(found, PathProblem) and found.kind == "path_outside_image_dir"
    assert resolve_image_path("../other/a.jpg", "s3://b/images", True) == "s3://b/other/a.jpg"


def test_urls_without_fsspec_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras_roi_datagen import paths

    paths._protocol_problem.cache_clear()
    real = paths.importlib.util.find_spec
    monkeypatch.setattr(paths.importlib.util, "find_spec",
                        lambda name, *a: None if name == "fsspec" else real(name, *a))
    found = paths.resolve_image_path("s3://b/a.jpg", None)
    paths._protocol_problem.cache_clear()
    assert isinstance(found, paths.PathProblem) and found.kind == "remote_file"
    assert "keras-roi-datagen[storage]" in found.message


def test_cli_inspect_and_validate_read_urls(http_url: str, s3: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from keras_roi_datagen.cli import main

    assert main(["inspect", f"{http_url}/table.csv", "--box-cols", "x,y,w,h", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["rows"] == facts["usable_rows"] == 12 and facts["images"] == 3
    assert facts["images_missing"] == 0
    assert main(["validate", f"{http_url}/table.csv", "--box-cols", "x,y,w,h", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["images"] == 3
    assert main(["validate", f"{http_url}/table.csv", "--box-cols", "x,y,w,h", "--json",
                 "--image-dir", f"{http_url}/denied"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["by_kind"] == {"storage_denied": 12}


def test_datamodule_reads_an_s3_table(s3: dict[str, Any], local_data: Path) -> None:
    from keras_roi_datagen import RoiDataModule

    data = RoiDataModule(f"s3://{BUCKET}/data/table.csv", box_cols=BOX_COLS, image_size=(16, 16),
                         batch_size=4, seed=3, storage_options=s3, validation_split=0.34)
    assert data.validate(progress=False).ok
    data.setup("fit")
    x, _ = numpy_batch(data.train_dataset()[0])
    assert x.shape == (4, 16, 16, 3) and x.max() > 0
    assert data.train_dataset().index.path_of(0).startswith(f"s3://{BUCKET}/data/images/")


@pytest.mark.slow
def test_worker_processes_read_s3(s3: dict[str, Any], local_data: Path) -> None:
    remote = _dataset(f"s3://{BUCKET}/data/table.csv", storage_options=s3, workers=2,
                      use_multiprocessing=True)
    served = [numpy_batch(batch) for batch in remote.iter_batches()]
    _assert_same(served, _all_batches(_dataset(local_data / "table.csv")))


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the child touches no JAX
def test_a_forked_child_opens_its_own_filesystem(s3: dict[str, Any]) -> None:
    parent, _ = storage.filesystem(f"s3://{BUCKET}/data/table.csv", s3)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it got the parent's object
        try:
            child, _ = storage.filesystem(f"s3://{BUCKET}/data/table.csv", s3)
            os.write(write, b"same" if child is parent else b"own")
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)
    if not ready:  # a hung child must not hang the suite
        os.kill(pid, signal.SIGKILL)
    answer = os.read(read, 16) if ready else b"hung"
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"own"


def test_index_cache_of_an_s3_table(s3: dict[str, Any], tmp_path: Path) -> None:
    fs = s3fs.S3FileSystem(**s3)
    data = fs.cat_file(f"{BUCKET}/data/table.csv")
    url = f"s3://{BUCKET}/data/cached.csv"
    fs.pipe_file(url[5:], data)
    first = _dataset(url, storage_options=s3, index_cache=tmp_path / "cache")
    again = _dataset(url, storage_options=s3, index_cache=tmp_path / "cache")
    assert again.index.cache_folder == first.index.cache_folder is not None
    assert again.index.source == url and again.index.fingerprint() == first.index.fingerprint()
    fs.pipe_file(url[5:], data + data.split(b"\n", 1)[1])  # the same key, its rows twice
    changed = _dataset(url, storage_options=s3, index_cache=tmp_path / "cache")
    assert len(changed.index) == 2 * len(first.index)
    assert changed.index.cache_folder != first.index.cache_folder


def test_denied_s3_request_names_the_url(s3: dict[str, Any]) -> None:
    import urllib.request

    endpoint = s3["client_kwargs"]["endpoint_url"]

    def auth_after(count: str) -> None:  # moto's server-mode switch for IAM checks
        urllib.request.urlopen(urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"})).read()

    wrong = {**s3, "key": "AKIAUNKNOWN000000000", "secret": "wrong"}
    auth_after("0")
    try:
        denied = re.escape(f"s3://{BUCKET}/data/table.csv: access denied")
        with pytest.raises(StorageError, match=denied) as info:
            storage.read_bytes(f"s3://{BUCKET}/data/table.csv", wrong)
        assert info.value.kind == "storage_denied" and info.value.attempts == 1  # not retried
        with pytest.raises(StorageError, match=denied) as info:
            _dataset(f"s3://{BUCKET}/data/table.csv", storage_options=wrong)
        assert info.value.kind == "storage_denied"
    finally:
        auth_after("inf")
    assert storage.read_bytes(f"s3://{BUCKET}/data/table.csv", s3)  # open again


def _flaky_table(local_data: Path) -> pd.DataFrame:
    return pd.read_csv(local_data / "table.csv")


def _assert_retries_reported(ds: Any, image_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    urls = {f"{image_dir}/images/scene_{i}.jpg": 2 for i in range(3)}  # fails twice, then serves
    stats = ds.storage_stats
    assert stats.retried_urls == urls
    assert stats.retries == 6
    lines = [r.getMessage() for r in caplog.records if r.name == "keras_roi_datagen"]
    assert len(lines) == 1, lines  # one line for the pass
    assert "6 requests retried" in lines[0]
    assert all(f"{url} (2)" in lines[0] for url in urls)


@pytest.mark.parametrize(("tag", "shuffle"),
                         [("threads", False), ("inline", False), ("windows", True)])
def test_retries_in_decode_threads_are_counted_and_logged(
        http_url: str, local_data: Path, caplog: pytest.LogCaptureFixture, tag: str,
        shuffle: bool) -> None:
    # "windows": the default shuffle decodes a window's batches as one job, then splits it.
    image_dir = f"{http_url}/flaky2-{tag}"
    ds = _dataset(_flaky_table(local_data), image_dir=image_dir, shuffle=shuffle,
                  workers=1 if tag == "inline" else 2)
    with caplog.at_level("WARNING", logger="keras_roi_datagen"), ds:
        served = [numpy_batch(batch) for batch in ds.iter_batches()]
    _assert_same(served, _all_batches(_dataset(local_data / "table.csv", shuffle=shuffle)))
    _assert_retries_reported(ds, image_dir, caplog)
    caplog.clear()
    with ds:  # a pass without retries logs nothing and the count stays
        list(ds.iter_batches())
    assert not [r for r in caplog.records if r.name == "keras_roi_datagen"]
    assert ds.storage_stats.retries == 6


@pytest.mark.slow
def test_retries_in_worker_processes_are_sent_back(
        http_url: str, local_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    image_dir = f"{http_url}/flaky2-processes"
    before = storage.retry_count()
    ds = _dataset(_flaky_table(local_data), image_dir=image_dir, shuffle=False, workers=2,
                  use_multiprocessing=True)
    with caplog.at_level("WARNING", logger="keras_roi_datagen"), ds:
        served = [numpy_batch(batch) for batch in ds.iter_batches()]
    _assert_same(served, _all_batches(_dataset(local_data / "table.csv", shuffle=False)))
    assert storage.retry_count() == before  # the retries were made in the workers
    _assert_retries_reported(ds, image_dir, caplog)


def test_validate_retries_are_in_the_dataset_stats(http_url: str, local_data: Path) -> None:
    image_dir = f"{http_url}/flaky2-validate"
    ds = _dataset(_flaky_table(local_data), image_dir=image_dir, shuffle=False)
    assert ds.validate(progress=False).retries == 6
    assert ds.storage_stats.retried_urls == {f"{image_dir}/images/scene_{i}.jpg": 2
                                             for i in range(3)}


def test_counting_retries_counts_only_the_callers_work(http_url: str) -> None:
    url = f"{http_url}/flaky2-count/images/scene_0.jpg"
    other = f"{http_url}/flaky1-count/images/scene_1.jpg"
    with storage.counting_retries() as outer:
        worker = threading.Thread(target=storage.read_bytes, args=(other,))
        worker.start()  # another thread's retry is not the caller's
        worker.join()
        with storage.counting_retries() as inner, storage.prefetch([url]):
            pass
    assert inner == [url, url]
    assert outer == [url, url]


class _CountingFilesystem:
    """A filesystem that records the bytes each `cat_file` returned."""

    def __init__(self, fs: Any, served: list[tuple[str, int]]) -> None:
        self._fs, self._served = fs, served

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> bytes:
        data: bytes = self._fs.cat_file(path, *args, **kwargs)
        self._served.append((path, len(data)))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every URL read through `storage` in this test, with the bytes it returned."""
    found: list[tuple[str, int]] = []
    real = storage.filesystem

    def counting(url: str, storage_options: Any = None) -> tuple[Any, str]:
        fs, path = real(url, storage_options)
        return _CountingFilesystem(fs, found), path

    monkeypatch.setattr(storage, "filesystem", counting)
    return found


def _rotated_jpeg(s3: dict[str, Any], key: str) -> int:
    """Uploads a 1600x1200 noisy JPEG whose EXIF says 'rotate 90' (shown 1200x1600)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    import io

    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    s3fs.S3FileSystem(**s3).pipe_file(f"{BUCKET}/{key}", out.getvalue())
    return len(out.getvalue())


def test_validate_reads_only_the_header_of_a_remote_jpeg(
        s3: dict[str, Any], served: list[tuple[str, int]]) -> None:
    from keras_roi_datagen.validation import HEAD_BYTES

    size = _rotated_jpeg(s3, "big/rotated.jpg")
    assert size > 10 * HEAD_BYTES
    table = pd.DataFrame({"filename": ["rotated.jpg"] * 2, "x": [0, 1300], "y": [0, 0],
                          "w": [1100, 100], "h": [1500, 100], "name": ["a", "b"],
                          "type": ["t", "t"]})
    ds = _dataset(table, image_dir=f"s3://{BUCKET}/big", storage_options=s3, on_error="skip")
    report = ds.validate(progress=False)
    # Checked against the displayed 1200x1600 (EXIF applied): row 0 fits, row 1 lies outside.
    assert [(p.row, p.kind) for p in report.problems] == [(1, "box_outside_image")]
    assert served == [(f"{BUCKET}/big/rotated.jpg", HEAD_BYTES)]  # one range read, no more
    served.clear()
    decoded = _dataset(table, image_dir=f"s3://{BUCKET}/big", storage_options=s3)
    assert [(p.row, p.kind) for p in decoded.validate(decode=True, progress=False).problems] == [
        (1, "box_outside_image")]
    assert served == [(f"{BUCKET}/big/rotated.jpg", size)]  # decoding needs the whole file


def test_validate_reads_a_small_remote_image_once(s3: dict[str, Any],
                                                  served: list[tuple[str, int]]) -> None:
    ds = _dataset(f"s3://{BUCKET}/data/table.csv", storage_options=s3)
    served.clear()  # the table's own download
    assert ds.validate(progress=False).ok
    assert sorted(path for path, _ in served) == [
        f"{BUCKET}/data/images/scene_{i}.jpg" for i in range(3)]


def test_validate_reads_a_remote_png_whole(s3: dict[str, Any], local_data: Path,
                                           served: list[tuple[str, int]]) -> None:
    from PIL import Image

    from keras_roi_datagen.validation import HEAD_BYTES

    rng = np.random.default_rng(4)
    path = local_data / "noise.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    s3fs.S3FileSystem(**s3).pipe_file(f"{BUCKET}/png/noise.png", path.read_bytes())
    table = pd.DataFrame({"filename": ["noise.png"], "x": [350], "y": [10], "w": [100],
                          "h": [20], "name": ["a"], "type": ["t"]})
    ds = _dataset(table, image_dir=f"s3://{BUCKET}/png", storage_options=s3)
    report = ds.validate(progress=False)
    assert [p.kind for p in report.problems] == ["box_clipped"]  # 400 wide: x 350..450
    # A PNG's EXIF may follow its pixels: after the header read, the whole file.
    assert served == [(f"{BUCKET}/png/noise.png", HEAD_BYTES),
                      (f"{BUCKET}/png/noise.png", path.stat().st_size)]
