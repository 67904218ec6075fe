import gzip

import pytest
import torch

from utils import data


@pytest.fixture
def no_sources(monkeypatch, tmp_path):
    """Nothing in $COURSE_DATA_DIR, no Debian package, and a download that fails as offline ones do."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(data, "_cache", {})

    def offline(folder):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_download", offline)
    return tmp_path


def test_missing_data_names_all_three_remedies(no_sources):
    with pytest.raises(data.DataNotFoundError) as error:
        data.fashion_mnist("train")
    message = str(error.value)
    assert "COURSE_DATA_DIR" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "internet" in message and "torchvision" in message


def test_corrupt_file_is_rejected(no_sources):
    for name in data._FILES:
        (no_sources / f"{name}.gz").write_bytes(gzip.compress(b"not fashion-mnist"))
    with pytest.raises(data.DataNotFoundError):
        data.fashion_mnist("test")


def test_unknown_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.fashion_mnist("validation")


def test_fashion_mnist_shapes_and_types():
    images, labels = data.fashion_mnist("test")
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(10))
    train_images, _ = data.fashion_mnist("train")
    assert train_images.shape == (60_000, 1, 28, 28)


def test_subset_is_balanced_and_seeded():
    images, labels = data.fashion_mnist("test")
    x1, y1 = data.subset(images, labels, 500, seed=1)
    x2, y2 = data.subset(images, labels, 500, seed=1)
    assert torch.equal(y1, y2) and torch.equal(x1, x2) and len(y1) == 500
    assert torch.bincount(y1, minlength=10).min() >= 45


def test_device_loader_batches_and_determinism():
    images, labels = data.fashion_mnist("test")
    images, labels = images[:1000], labels[:1000]
    loader = data.DeviceLoader(images, labels, batch_size=300, shuffle=True, augment=True, seed=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and batches[-1][0].shape == (100, 1, 28, 28)
    assert batches[0][0].dtype == torch.float32
    again = list(data.DeviceLoader(images, labels, batch_size=300, shuffle=True, augment=True, seed=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


def test_random_shift_flip_moves_pixels_not_values():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    out = data.random_shift_flip(x, torch.Generator().manual_seed(0), pad=1)
    assert out.shape == x.shape
    # every pixel is either padding (0) or a value of the same image
    for i in range(2):
        values = set(out[i].flatten().tolist()) - {0.0}
        assert values <= set(x[i].flatten().tolist())


@pytest.mark.parametrize("channels", [1, 3])
def test_augmented_batches_leave_in_the_standard_layout(channels):
    """A permuted (channels_last) batch sends every convolution down oneDNN's NHWC kernels (see utils.runtime):
    the strides must be those of a fresh N×C×H×W tensor, which `.contiguous()` alone does not promise for 1 channel."""
    out = data.random_shift_flip(torch.rand(4, channels, 5, 7), torch.Generator().manual_seed(0))
    assert out.stride() == torch.empty(4, channels, 5, 7).stride()


def test_image_dataset_and_stack_batch_feed_a_dataloader():
    from torch.utils.data import DataLoader

    from utils.data import ImageDataset, stack_batch

    images = torch.arange(6 * 4, dtype=torch.uint8).view(6, 1, 2, 2)
    dataset = ImageDataset(images, torch.arange(6))
    assert len(dataset) == 6
    image, label = dataset[3]
    torch.testing.assert_close(image, images[3].float() / 255)
    assert label == 3
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=stack_batch))
    assert [tuple(b[0].shape) for b in batches] == [(4, 1, 2, 2), (2, 1, 2, 2)]
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(6))
    with pytest.raises(ValueError, match="one row per item"):
        ImageDataset(images, torch.arange(5))
    with pytest.raises(ValueError, match="batch_size"):
        stack_batch([])


def test_device_loader_on_a_missing_gpu_says_which_device_to_pass():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match=r"no CUDA GPU here: pass utils.runtime.device\(\)"):
        data.DeviceLoader(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4), device="cuda")
