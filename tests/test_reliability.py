"""Nothing lost, nothing silently wrong: damaged data and checkpoints, failed saves, Ctrl-C, bad arguments.

Each test is one probe of issue 14: a fault or a bad input, and the clear error or the recovery it must get.
"""

import gzip
import socket
import time

import pytest
import torch
from torch import nn

from utils import checkpoints, data, training


# ------------------------------------------------------------------------------------------- Fashion-MNIST
@pytest.fixture
def good_copy():
    """A folder holding the four verified files (wherever this machine has them)."""
    try:
        return data._locate()[0]
    except data.DataNotFoundError:
        pytest.skip("no Fashion-MNIST on this machine")


@pytest.fixture
def bad_sources(monkeypatch, tmp_path):
    """$COURSE_DATA_DIR with a truncated, a corrupt and a foreign file, no Debian copy, an offline download."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "_cache", {})
    monkeypatch.setattr(data, "_rejected", {})
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    whole = gzip.compress(b"\0" * 1000)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])        # EOFError
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\0" + b"\xff" * 40)  # zlib.error
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"plain text, not gzip")          # BadGzipFile
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\1" * 10008))     # right size, wrong bytes

    def offline(folder):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_download", offline)
    return tmp_path


def test_bad_files_are_named_and_skipped_for_the_next_source(good_copy, bad_sources, monkeypatch, capsys):
    monkeypatch.setattr(data, "DEBIAN_DIR", good_copy)
    images, labels = data.fashion_mnist("test")
    assert images.shape == (10_000, 1, 28, 28) and len(labels) == 10_000
    warnings = capsys.readouterr().err.splitlines()
    for name in data._FILES:
        assert sum(str(bad_sources / f"{name}.gz") in line for line in warnings) == 1, warnings
    assert "data/" not in data.source() and str(good_copy) in data.source()


def test_no_usable_source_names_every_rejected_file_and_the_remedies(bad_sources):
    with pytest.raises(data.DataNotFoundError) as error:
        data.fashion_mnist("train")
    message = str(error.value)
    for name in data._FILES:
        assert str(bad_sources / f"{name}.gz") in message
    for why in ("EOFError", "zlib.error", "BadGzipFile", "wrong checksum"):
        assert why in message
    assert "COURSE_DATA_DIR" in message and "apt-get install dataset-fashion-mnist" in message
    assert "internet" in message and "network is unreachable" in message


def test_download_times_out_and_leaves_no_folders(monkeypatch, tmp_path):
    """A server that accepts the connection and never answers: the download gives up, cleanly."""
    from torchvision.datasets import FashionMNIST

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)   # the kernel completes the handshake; nobody ever replies
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{silent.getsockname()[1]}/"])
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 1)
    target = tmp_path / "data"
    start = time.perf_counter()
    try:
        with pytest.raises((OSError, RuntimeError)):
            data._download(target)
    finally:
        silent.close()
    assert time.perf_counter() - start < 30
    assert not target.exists(), "a failed download must not leave empty folders"
    assert socket.getdefaulttimeout() is None


def test_standardize_refuses_float_input():
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    assert data.standardize(images).dtype == torch.float32
    with pytest.raises(TypeError, match="uint8"):
        data.standardize(images.float() / 255)


def test_device_loader_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="one row per item"):
        data.DeviceLoader(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        data.DeviceLoader(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.zeros(10), batch_size=0)


# ------------------------------------------------------------------------------------------ checkpoint files
def test_atomic_save_round_trip_holds_tensors_and_plain_data(tmp_path):
    content = {"weights": torch.randn(3, 4).to(torch.bfloat16), "rows": [{"epoch": 1, "acc": 0.5}],
               "flags": (True, None, "x")}
    assert checkpoints.atomic_save(content, tmp_path / "a.pt")
    loaded = checkpoints.verified_load(tmp_path / "a.pt")
    assert torch.equal(loaded["weights"], content["weights"]) and loaded["rows"] == content["rows"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left
    assert checkpoints.verified_load(tmp_path / "absent.pt") is None


def test_only_tensors_and_plain_data_can_be_saved(tmp_path):
    with pytest.raises(TypeError, match="plain data"):
        checkpoints.atomic_save({"history": training.History()}, tmp_path / "a.pt")


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "code"])
def test_damaged_file_is_reported_and_treated_as_absent(tmp_path, capsys, damage):
    path = tmp_path / "a.pt"
    checkpoints.atomic_save({"weights": torch.arange(10_000.0)}, path)
    raw = bytearray(path.read_bytes())
    if damage == "flip":       # one byte inside the tensor data: loads fine, the checksum catches it
        at = raw.index(torch.arange(10_000.0)[5000:5002].numpy().tobytes())
        raw[at] ^= 0xFF
        path.write_bytes(raw)
    elif damage == "truncate":  # an interrupted write of an older, non-atomic save
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "foreign":   # a plain torch.save from elsewhere
        torch.save({"weights": torch.zeros(3)}, path)
    else:                       # a pickle that would run code: weights_only refuses it
        torch.save({"history": training.History()}, path)
    assert checkpoints.verified_load(path) is None
    assert f"ignoring {path}" in capsys.readouterr().err


def test_failed_save_warns_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")   # like a read-only or missing folder
    assert not checkpoints.atomic_save({"w": torch.zeros(2)}, blocker / "sub" / "a.pt")
    assert f"could not write {blocker / 'sub' / 'a.pt'}" in capsys.readouterr().err

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    assert not checkpoints.atomic_save({"w": torch.zeros(2)}, tmp_path / "a.pt")
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ----------------------------------------------------------------------------------------- fit and its keys
@pytest.fixture
def tiny(monkeypatch, tmp_path):
    images, labels = data.fashion_mnist("test")
    monkeypatch.setattr(training, "data_dir", lambda: tmp_path)
    return images[:256], labels[:256]


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(196, 10))


def train(tiny, model=None, **kwargs):
    x, y = tiny
    model = model or small_model()
    kwargs = {"epochs": 1, "lr": 3e-3, "plot": False, **kwargs}
    return model, training.fit(model, data.DeviceLoader(x, y, 64, shuffle=True), **kwargs)


def test_damaged_checkpoint_is_retrained_then_reused(tiny, capsys):
    _, first = train(tiny, name="net")
    path, = (training.data_dir() / "checkpoints").rglob("*.pt")
    path.write_bytes(path.read_bytes()[:-100])
    _, second = train(tiny, name="net")
    err = capsys.readouterr().err
    assert not second.from_checkpoint and f"ignoring {path}" in err
    _, third = train(tiny, name="net")
    assert third.from_checkpoint and third.rows == second.rows


def test_failed_checkpoint_save_keeps_the_trained_model(tiny, monkeypatch, capsys):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    model, history = train(tiny, name="net", val_loader=data.DeviceLoader(*tiny, 256))
    assert "could not write" in capsys.readouterr().err and len(history.rows) == 1
    assert training.evaluate(model, data.DeviceLoader(*tiny, 256))["acc"] == pytest.approx(history.last("val_acc"))


def test_every_constructor_setting_changes_the_checkpoint_key():
    from utils.models.transformer import Seq2SeqTransformer
    from utils.models.vit import ViT

    def key(model):
        return training.checkpoint_path("m", model, {})

    torch.manual_seed(1)
    assert key(ViT()) == key(ViT())    # same settings, other random weights: same key
    vits = [ViT(pool=pool, position=position) for pool in ViT.POOLS for position in ViT.POSITIONS]
    assert len({key(m) for m in vits}) == len(vits)
    seq2seq = [Seq2SeqTransformer(12, 12, positions=p, max_len=n) for p in Seq2SeqTransformer.POSITIONS
               for n in (16, 32)]
    assert len({key(m) for m in seq2seq}) == len(seq2seq)
    assert key(nn.Dropout(0.1)) != key(nn.Dropout(0.2))


def test_key_ignores_what_a_forward_pass_caches():
    from utils.attention_modules import SE

    gate = SE(8)
    before = training.checkpoint_path("se", gate, {})
    gate(torch.randn(2, 8, 4, 4))     # SE keeps its last gate in .gate
    assert training.checkpoint_path("se", gate, {}) == before


def test_fit_refuses_bad_arguments_before_training(tiny):
    x, y = tiny
    calls = []

    def counting_loss(model, batch):
        calls.append(1)
        return training.classification_loss(model, batch)

    loader = data.DeviceLoader(x, y, 64)
    with pytest.raises(ValueError, match="needs a val_loader"):
        training.fit(small_model(), loader, epochs=1, lr=1e-3, monitor="val_acc", loss_fn=counting_loss)
    with pytest.raises(ValueError, match="no batches"):
        training.fit(small_model(), data.DeviceLoader(x[:10], y[:10], 64, drop_last=True), epochs=1, lr=1e-3)
    with pytest.raises(ValueError, match="no batches"):
        training.fit(small_model(), [], epochs=1, lr=1e-3)
    with pytest.raises(ValueError, match="epochs"):
        training.fit(small_model(), loader, epochs=0, lr=1e-3)
    with pytest.raises(ValueError, match="lr"):
        training.fit(small_model(), loader, epochs=1, lr=float("nan"))
    with pytest.raises(ValueError, match="name"):
        training.fit(small_model(), loader, epochs=1, lr=1e-3, name="a/b")
    assert not calls
    with pytest.raises(ValueError, match="logged keys"):
        training.fit(small_model(), loader, epochs=1, lr=1e-3, val_loader=loader, monitor="val_map", plot=False)


def test_fit_output_is_one_bar_and_one_summary(tiny, capsys):
    train(tiny, epochs=3, name="quiet", val_loader=data.DeviceLoader(*tiny, 256))
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "quiet: 3 epochs" in captured.out
    assert "batch" not in captured.err   # no per-batch bar


# ----------------------------------------------------------------------------- silently wrong, now refused
def test_nms_refuses_nan_scores_and_mismatched_lengths():
    from utils.detection import batched_nms, nms, postprocess

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    with pytest.raises(ValueError, match="NaN"):
        nms(boxes, torch.tensor([float("nan"), 0.9, 0.8]), 0.5)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1]), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\)"):
        batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1, 1]), 0.5)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        postprocess(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 1, 1]))


def test_map_refuses_nan_scores_and_mismatched_lengths():
    from utils.detection import mean_average_precision

    target = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
    nan = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([float("nan")]),
            "labels": torch.tensor([1])}]
    with pytest.raises(ValueError, match="NaN"):
        mean_average_precision(nan, target)
    short = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 9, 9]]), "scores": torch.tensor([0.9]),
              "labels": torch.tensor([1, 1])}]
    with pytest.raises(ValueError, match=r"preds\[0\]\['scores'\] must have shape \(2,\)"):
        mean_average_precision(short, target)


def test_iou_loss_refuses_inverted_boxes():
    from utils.detection import iou_loss

    good = torch.tensor([[0.0, 0, 10, 10]])
    assert iou_loss(good, good).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="x2 < x1"):
        iou_loss(torch.tensor([[10.0, 10, 0, 0]]), good)
    with pytest.raises(ValueError, match="N×4"):
        iou_loss(good, torch.zeros(2, 4))


def test_mean_attention_distance_refuses_logits():
    from utils.vit_attention import mean_attention_distance

    logits = torch.randn(1, 2, 5, 5) * 3
    distances = mean_attention_distance(logits.softmax(-1), 2, 4)
    assert distances.shape == (1, 2) and (distances >= 0).all()
    with pytest.raises(ValueError, match="softmax"):
        mean_attention_distance(logits, 2, 4)


def test_fusion_metrics_refuses_unit_range_floats_and_ssim_2d_inputs():
    from utils import fusion as fu, image_ops

    ir = torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) * 255
    assert fu.fusion_metrics(ir, ir, ir)["PSNR"] == float("inf")
    with pytest.raises(ValueError, match=r"\[0, 1\].*fused \* 255"):
        fu.fusion_metrics(ir / 255, ir, ir)
    with pytest.raises(ValueError, match=r"image\[None, None\]"):
        image_ops.ssim(ir, ir)
    with pytest.raises(ValueError, match="data_range=1.0"):
        image_ops.ssim((ir / 255)[None, None], (ir / 255)[None, None])
    assert image_ops.ssim((ir / 255)[None, None], (ir / 255)[None, None], 1.0).item() == pytest.approx(1.0)


def test_receptive_field_refuses_what_it_cannot_follow():
    from utils.receptive_field import receptive_field

    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 7)), (1, 16, 16))[-1].rf == 7
    with pytest.raises(ValueError, match=r"non-square kernel \(1, 7\)"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, (1, 7))), (1, 16, 16))
    with pytest.raises(ValueError, match=r"without the batch dimension: pass \(1, 16, 16\)"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3)), (8, 1, 16, 16))
    wide = receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2)), (1, 16, 32))[-1]   # a photo is not square
    assert (wide.rf, wide.jump, wide.start) == (3, 2, 1.5), wide


def test_explorer_shows_every_render_error_as_the_message():
    from utils.widgets import Explorer, slider

    def render(value):
        if value == 1:
            raise KeyError("no such layer")
        raise ValueError("value must be 0")

    explorer = Explorer(render, {"value": slider("value", 0, 2, 1)})
    assert "KeyError" in explorer.message.value and "no such layer" in explorer.message.value
    explorer.set(value=2)
    assert "value must be 0" in explorer.message.value and "ValueError" not in explorer.message.value


def test_channel_weights_explorer_names_the_bad_model():
    from utils.attention_modules import channel_weights_explorer

    gates = {"SE": {"block1": torch.rand(10, 4)}}
    images, labels = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    explorer = channel_weights_explorer(gates, images, labels, {"SE": torch.rand(4, 8, 8)})
    render = explorer.render
    with pytest.raises(ValueError, match="model must be one of"):
        render(model="ECA", layer=0, label=0)
    with pytest.raises(ValueError, match="layer must be in 0..0"):
        render(model="SE", layer=3, label=0)


def test_rescaling_helpers_refuse_already_scaled_input_and_subset_checks_its_arguments():
    from utils.fid import to_generator_range

    images = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    assert to_generator_range(images).max().item() == 1.0
    with pytest.raises(TypeError, match="uint8"):
        to_generator_range(images.float() / 255)
    with pytest.raises(ValueError, match="one row per item"):
        data.subset(images, torch.zeros(3), 1)
    with pytest.raises(ValueError, match="positive integer"):
        data.subset(images, torch.zeros(2), -5)


def test_feature_maps_refuses_a_batch_or_raw_pixels():
    from utils.look_inside import feature_maps

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    image = torch.rand(1, 8, 8)
    assert feature_maps(model, image, ["0"])["0"].shape == (2, 6, 6)
    with pytest.raises(ValueError, match=r"images\[i\]"):
        feature_maps(model, image[None], ["0"])
    with pytest.raises(ValueError, match="standardize"):
        feature_maps(model, (image * 255).to(torch.uint8), ["0"])
