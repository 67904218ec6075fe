"""Contrastive learning by hand: the four losses, triplet mining, two-view augmentation, and how to judge an embedding.

Introduced in Chapter 9 (09_contrastive_multimodal). Shapes in the docstrings; every loss is averaged.

- `contrastive_loss` — Hadsell, Chopra & LeCun (2006): ½d² for a positive pair, ½max(0, m − d)² for a negative;
- `triplet_loss` — FaceNet (Schroff et al., 2015): max(0, ‖a−p‖² − ‖a−n‖² + m); `batch_hard_triplet_loss` and
  `semi_hard_triplet_loss` mine the triplets inside a labelled batch (`mine_semi_hard` says which);
- `info_nce` — SimCLR's NT-Xent (Chen et al., 2020) over the 2N views of a batch;
- `clip_loss` — CLIP (Radford et al., 2021): symmetric cross-entropy over the N×N image–text similarity matrix;
  `sample_hard_negatives` — BLIP's (Li et al., 2022) negatives for image–text matching, drawn by that similarity;
- `alignment` and `uniformity` — Wang & Isola (2020): what a temperature trades;
- `two_views` — SimCLR-style random resized crop (`torchvision.ops.roi_align`, one box per image), flip, brightness
  and contrast jitter and noise, drawn per image on the images' device;
- `linear_probe`, `knn_accuracy` — the two standard read-outs of a frozen embedding;
- `ema_update` — BYOL's target network; `embedding_std` — its collapse detector (SimSiam's measure).
- `render_views`, `render_temperature_sweep`, `render_verification_roc`, `render_neighbours` — the chapter's figures.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.ndim != 2 or a.shape != b.shape or len(a) == 0:
        shapes = [tuple(t.shape) if torch.is_tensor(t) else type(t).__name__ for t in (a, b)]
        raise ValueError(f"{names} must be two non-empty N×D tensors of the same shape, got {shapes[0]} and "
                         f"{shapes[1]}")


def _check_temperature(temperature, name: str = "temperature", example: float = 0.1) -> None:
    """A finite number > 0 (or a one-element tensor, CLIP's learnt one): logits divided by NaN are NaN, by ∞ a
    constant with no gradient, and a negative one ranks every negative above the positive."""
    value = temperature.detach() if torch.is_tensor(temperature) else temperature
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)) or \
            (torch.is_tensor(value) and value.numel() != 1) or not 0 < float(value) < math.inf:
        raise ValueError(f"{name} must be a finite number > 0 such as {example}, not {temperature!r}")


def _check_margin(margin) -> None:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 <= margin < math.inf:
        raise ValueError(f"margin must be a finite number ≥ 0 such as 0.2, not {margin!r}")


def contrastive_loss(x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Hadsell et al.'s margin loss over N pairs: x1, x2 (N×D), same (N, bool: a positive pair).

    mean over pairs of ½d² (positive) or ½max(0, margin − d)² (negative), d = ‖x1 − x2‖₂. Positives are pulled
    together; negatives are pushed apart only until they are ``margin`` away (then they cost nothing)."""
    _check_pair(x1, x2, "x1 and x2")
    _check_margin(margin)
    if not torch.is_tensor(same) or same.shape != (len(x1),):
        raise ValueError(f"same must be a tensor of N = {len(x1)} flags (True for a positive pair)")
    distance = (x1 - x2).pow(2).sum(1).clamp_min(1e-12).sqrt()
    same = same.bool()
    return torch.where(same, 0.5 * distance.pow(2), 0.5 * (margin - distance).clamp_min(0).pow(2)).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.2) -> torch.Tensor:
    """FaceNet's loss over N triplets (each N×D, used as given: normalise them first if you want FaceNet's sphere):
    mean of max(0, ‖a − p‖² − ‖a − n‖² + margin)."""
    _check_pair(anchor, positive, "anchor and positive")
    _check_pair(anchor, negative, "anchor and negative")
    _check_margin(margin)
    d_positive = (anchor - positive).pow(2).sum(1)
    d_negative = (anchor - negative).pow(2).sum(1)
    return (d_positive - d_negative + margin).clamp_min(0).mean()


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """‖xᵢ − xⱼ‖² for every pair of rows of x (N×D) → N×N, exact zeros on the diagonal."""
    if not torch.is_tensor(x) or x.ndim != 2:
        raise ValueError(f"x must be an N×D tensor, got {tuple(x.shape) if torch.is_tensor(x) else type(x)}")
    squares = x.pow(2).sum(1)
    distances = (squares[:, None] + squares[None, :] - 2 * x @ x.T).clamp_min(0)
    return distances.fill_diagonal_(0)


def _check_labelled(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    if not torch.is_tensor(embeddings) or embeddings.ndim != 2:
        raise ValueError("embeddings must be an N×D tensor")
    if not torch.is_tensor(labels) or labels.shape != (len(embeddings),) or labels.is_floating_point():
        raise ValueError(f"labels must be N = {len(embeddings)} integer class ids, one per embedding")


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Hermans et al. (2017): each anchor with its *farthest* positive and *nearest* negative in the batch.
    embeddings N×D, labels N; anchors without a positive or a negative are skipped."""
    _check_labelled(embeddings, labels)
    _check_margin(margin)
    distances = squared_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positives, negatives = same & ~eye, ~same
    hardest_positive = distances.masked_fill(~positives, float("-inf")).amax(1)
    hardest_negative = distances.masked_fill(~negatives, float("inf")).amin(1)
    valid = positives.any(1) & negatives.any(1)
    if not valid.any():
        raise ValueError("no anchor has both a positive and a negative in this batch: batches need ≥ 2 classes "
                         "and ≥ 2 examples of some class")
    return (hardest_positive - hardest_negative + margin).clamp_min(0)[valid].mean()


def mine_semi_hard(distances: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """FaceNet's semi-hard negatives. distances N×N (squared), labels N → negative index N×N for every (anchor a,
    positive p) pair: the nearest negative n with d(a,p) < d(a,n) < d(a,p) + margin — farther than the positive
    but still inside the margin, so it teaches without the noise of the very hardest — or, when there is none,
    the farthest negative (TensorFlow Addons' rule). Entries for non-positive pairs are −1."""
    if not torch.is_tensor(distances) or distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError("distances must be an N×N matrix of squared distances (see squared_distances)")
    _check_labelled(distances, labels)
    _check_margin(margin)
    same = labels[:, None] == labels[None, :]
    negative = ~same                                                         # a × n
    d_ap = distances[:, :, None]                                             # a × p × 1
    d_an = distances[:, None, :]                                             # a × 1 × n
    semi = negative[:, None, :] & (d_an > d_ap) & (d_an < d_ap + margin)     # a × p × n
    nearest = d_an.expand_as(semi).masked_fill(~semi, float("inf")).argmin(2)
    farthest = distances.masked_fill(~negative, float("-inf")).argmax(1)     # a
    chosen = torch.where(semi.any(2), nearest, farthest[:, None])
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    usable = same & ~eye & negative.any(1, keepdim=True)
    return torch.where(usable, chosen, torch.full_like(chosen, -1))


def semi_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The triplet loss over every (anchor, positive) pair of the batch with its `mine_semi_hard` negative."""
    _check_labelled(embeddings, labels)
    distances = squared_distances(embeddings)
    with torch.no_grad():
        negatives = mine_semi_hard(distances, labels, margin)
    anchors, positives = (negatives >= 0).nonzero(as_tuple=True)
    if len(anchors) == 0:
        raise ValueError("no (anchor, positive) pair with a negative in this batch: batches need ≥ 2 classes "
                         "and ≥ 2 examples of some class")
    d_positive = distances[anchors, positives]
    d_negative = distances[anchors, negatives[anchors, positives]]
    return (d_positive - d_negative + margin).clamp_min(0).mean()


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent. z1, z2: N×D, row i of each is a view of the same image. The 2N views are L2-normalised;
    for each view the logits are its cosine similarities / temperature with the other 2N − 1 views, the target is
    its pair (the other 2N − 2 are negatives); the cross-entropy is averaged over all 2N views."""
    _check_pair(z1, z2, "z1 and z2")
    _check_temperature(temperature)
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))          # a view is not its own negative
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def clip_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, temperature=0.07) -> torch.Tensor:
    """CLIP's loss. Both N×D, pair i matches; L2-normalised, logits = similarity / temperature (N×N: image i ×
    text j); the mean of the image→text (rows) and text→image (columns) cross-entropies with the diagonal as
    targets. ``temperature`` may be a tensor (CLIP learns it as exp(−logit_scale))."""
    _check_pair(image_embeddings, text_embeddings, "image_embeddings and text_embeddings")
    _check_temperature(temperature)
    images = F.normalize(image_embeddings.float(), dim=1)
    texts = F.normalize(text_embeddings.float(), dim=1)
    logits = images @ texts.T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def sample_hard_negatives(similarity: torch.Tensor, allowed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """BLIP's hard negatives for image–text matching: for every row i of ``similarity`` (N×M, e.g. image i × text j,
    the contrastive cosines), one column j drawn with probability softmax(similarity[i]) over the columns where
    ``allowed[i, j]`` (N×M bool: not a true pair) — the wrong captions the contrastive model finds most alike are
    drawn most often. Returns N column indices (int64)."""
    if similarity.ndim != 2 or allowed.shape != similarity.shape or allowed.dtype != torch.bool:
        raise ValueError("similarity must be N×M and allowed an N×M bool tensor of the negatives each row may take")
    if not allowed.any(1).all():
        raise ValueError("every row needs at least one allowed negative: use a batch with more than one kind of item")
    weights = similarity.float().masked_fill(~allowed, float("-inf")).softmax(1)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


def alignment(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Wang & Isola's alignment: mean ‖f(x) − f(x⁺)‖² over positive pairs of normalised embeddings (0 = perfect;
    lower is better)."""
    _check_pair(z1, z2, "z1 and z2")
    return (F.normalize(z1.float(), dim=1) - F.normalize(z2.float(), dim=1)).pow(2).sum(1).mean()


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola's uniformity: log mean over pairs i ≠ j of exp(−t‖zᵢ − zⱼ‖²), normalised z (N×D). Lower =
    spread more evenly over the sphere; 0 when every embedding is the same point (collapse)."""
    if not torch.is_tensor(z) or z.ndim != 2 or len(z) < 2:
        raise ValueError("z must be an N×D tensor with N ≥ 2")
    _check_temperature(t, "t", 2.0)
    z = F.normalize(z.float(), dim=1)
    distances = torch.pdist(z).pow(2)
    return (-t * distances).exp().mean().log()


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the standard deviation of the L2-normalised embeddings z (N×D): ≈ 1/√D when they
    spread over the sphere, → 0 when they collapse to one point (SimSiam, Chen & He 2021)."""
    if not torch.is_tensor(z) or z.ndim != 2 or len(z) < 2:
        raise ValueError("z must be an N×D tensor with N ≥ 2")
    return F.normalize(z.float(), dim=1).std(0).mean().item()


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, decay: float) -> None:
    """BYOL's target: θ_target ← decay·θ_target + (1 − decay)·θ_online, parameters and float buffers alike."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1] (BYOL uses 0.99–0.996), not {decay}")
    for t, o in zip(list(target.parameters()) + list(target.buffers()),
                    list(online.parameters()) + list(online.buffers())):
        if t.shape != o.shape:
            raise ValueError("target and online networks must have the same structure")
        if t.is_floating_point():
            t.lerp_(o, 1 - decay)
        else:
            t.copy_(o)


def random_crop_boxes(count: int, size: int, scale: tuple[float, float], generator: torch.Generator,
                      device=None) -> torch.Tensor:
    """``count`` random square crop boxes (x1, y1, x2, y2) of a size×size image covering a fraction of its area
    uniform in ``scale``, placed uniformly — RandomResizedCrop's draw with aspect ratio 1."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must be (low, high) with 0 < low ≤ high ≤ 1, not {scale}")
    device = device or generator.device
    area = torch.rand(count, generator=generator, device=device) * (scale[1] - scale[0]) + scale[0]
    side = area.sqrt() * size
    corner = torch.rand(count, 2, generator=generator, device=device) * (size - side[:, None])
    return torch.cat([corner, corner + side[:, None]], 1)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each image (N×C×H×W float) cropped to its box (N×4, x1 y1 x2 y2 in pixels) and resized to H×W by bilinear
    sampling at bin centres — `torchvision.ops.roi_align`, one box per image, in one call."""
    if images.ndim != 4 or boxes.shape != (len(images), 4):
        raise ValueError(f"need images N×C×H×W and boxes N×4, got {tuple(images.shape)} and {tuple(boxes.shape)}")
    rois = torch.cat([torch.arange(len(images), device=images.device, dtype=boxes.dtype)[:, None], boxes], 1)
    return roi_align(images, rois.to(images.dtype), output_size=images.shape[-2:], spatial_scale=1.0,
                     sampling_ratio=1, aligned=True)


AUGMENTATIONS = ("crop", "flip", "jitter", "noise")


def augment(images: torch.Tensor, generator: torch.Generator, use=AUGMENTATIONS,
            crop_scale: tuple[float, float] = (0.35, 1.0)) -> torch.Tensor:
    """One random view per image (N×C×H×W floats, standardised), every draw made per image on the images' device:
    ``crop`` random resized crop, ``flip`` horizontal flip, ``jitter`` brightness and contrast (the grey-scale
    part of ColorJitter), ``noise`` Gaussian noise. ``use`` picks a subset (the chapter's ablation)."""
    unknown = set(use) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}: choose from {AUGMENTATIONS}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError("images must be float N×C×H×W")
    if generator.device.type != images.device.type:
        raise ValueError("draw on the images' device: torch.Generator(device=images.device)")
    n, dev = len(images), images.device
    x = images
    if "crop" in use:
        x = resized_crops(x, random_crop_boxes(n, x.shape[-1], crop_scale, generator, dev))
    if "flip" in use:
        flip = torch.rand(n, 1, 1, 1, generator=generator, device=dev) < 0.5
        x = torch.where(flip, x.flip(-1), x)
    if "jitter" in use:
        contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=generator, device=dev)
        brightness = 0.8 * (torch.rand(n, 1, 1, 1, generator=generator, device=dev) - 0.5)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean + brightness
    if "noise" in use:
        x = x + 0.2 * torch.randn(x.shape, generator=generator, device=dev)
    return x


def _check_features(train_x, train_y, test_x, test_y) -> None:
    for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        if not torch.is_tensor(x) or x.ndim != 2 or not torch.is_tensor(y) or y.shape != (len(x),):
            raise ValueError(f"{name} features must be N×D with N labels")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_x.shape[1]} vs {test_x.shape[1]}")


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int = 20) -> float:
    """Accuracy of a majority vote among the ``k`` training embeddings most cosine-similar to each test embedding
    (ties go to the smaller class id)."""
    _check_features(train_x, train_y, test_x, test_y)
    if not isinstance(k, int) or not 1 <= k <= len(train_x):
        raise ValueError(f"k must be an integer in [1, {len(train_x)}], not {k!r}")
    train, test = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for chunk, labels in zip(test.split(1024), test_y.split(1024)):
        neighbours = (chunk @ train.T).topk(k, dim=1).indices
        votes = F.one_hot(train_y[neighbours], classes).sum(1)
        correct += (votes.argmax(1) == labels).sum().item()
    return correct / len(test_y)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 steps: int = 100, weight_decay: float = 1e-4) -> float:
    """Test accuracy of a multinomial logistic regression fitted (full batch, L-BFGS) on frozen, standardised
    features: how *linearly* the embedding separates the classes."""
    _check_features(train_x, train_y, test_x, test_y)
    mean, std = train_x.float().mean(0), train_x.float().std(0) + 1e-6
    train, test = (train_x.float() - mean) / std, (test_x.float() - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    with torch.enable_grad():
        layer = torch.nn.Linear(train.shape[1], classes).to(train.device)
        optimizer = torch.optim.LBFGS(layer.parameters(), lr=1, max_iter=steps, history_size=20,
                                      line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(layer(train), train_y) + weight_decay * layer.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        return (layer(test).argmax(1) == test_y).float().mean().item()


def pca_2d(z: torch.Tensor) -> torch.Tensor:
    """The first two principal components of z (N×D, N ≥ 2) → N×2: the embedding explorer's map."""
    if not torch.is_tensor(z) or z.ndim != 2 or len(z) < 2 or z.shape[1] < 2:
        raise ValueError("z must be an N×D tensor with N ≥ 2 and D ≥ 2")
    centred = z.float() - z.float().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T


def render_neighbours(embeddings: torch.Tensor, projection: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                      index: int = 0, neighbours: int = 6, class_names=None):
    """The embedding explorer's figure: the 2-D ``projection`` (N×2) coloured by class with image ``index`` and its
    ``neighbours`` nearest (by embedding distance, N×D ``embeddings``) marked, and those images with their
    distances. ``images`` uint8 N×1×H×W, ``labels`` N."""
    import matplotlib.pyplot as plt

    count = len(embeddings)
    if not (len(projection) == len(images) == len(labels) == count):
        raise ValueError("embeddings, projection, images and labels need one row per image")
    if not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"image must be an index from 0 to {count - 1}, not {index!r}")
    if not isinstance(neighbours, int) or not 1 <= neighbours < min(count, 11):
        raise ValueError(f"neighbours must be from 1 to {min(count - 1, 10)}, not {neighbours!r}")
    names = class_names or [str(c) for c in range(int(labels.max()) + 1)]
    distances = (embeddings - embeddings[index]).pow(2).sum(1)
    distances[index] = float("inf")
    nearest = distances.argsort()[:neighbours].numpy()
    fig = plt.figure(figsize=(11, 4.6), layout="constrained")
    grid = fig.add_gridspec(2, 6, width_ratios=[3.2, 1, 1, 1, 1, 1])
    ax_map = fig.add_subplot(grid[:, 0])
    projection, labels = projection.numpy(), labels.numpy()
    points = ax_map.scatter(projection[:, 0], projection[:, 1], c=labels, cmap="tab10", s=6, vmin=-0.5, vmax=9.5)
    bar = fig.colorbar(points, ax=ax_map, ticks=range(10))
    bar.ax.set_yticklabels(names, fontsize=7)
    ax_map.scatter(projection[nearest, 0], projection[nearest, 1], s=60, facecolors="none", edgecolors="black",
                   label=f"{neighbours} nearest")
    ax_map.scatter(projection[index, 0], projection[index, 1], s=160, marker="*", color="red", edgecolors="black",
                   label=f"image {index}")
    ax_map.legend(fontsize=7, loc="upper right")
    ax_map.set(xlabel="principal component 1", ylabel="principal component 2", title="embedding, 2-D projection")
    cells = [(0, 1)] + [(r, c) for r in range(2) for c in range(1, 6) if (r, c) != (0, 1)]
    for k, (r, c) in enumerate(cells[:neighbours + 1]):
        ax = fig.add_subplot(grid[r, c])
        i = index if k == 0 else int(nearest[k - 1])
        ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set(xticks=[], yticks=[])
        title = f"query: {names[int(labels[i])]}" if k == 0 else \
            f"{names[int(labels[i])]}\nd²={distances[i].item():.3f}"
        ax.set_title(title, fontsize=8, color="red" if k == 0 else
                     ("black" if labels[i] == labels[index] else "tab:orange"))
    return fig


def render_views(images: torch.Tensor, views: list[torch.Tensor]):
    """Each image beside its random views, one image a row: ``images`` float N×1×H×W (standardised) and ``views``
    a list of V tensors of the same shape (view k of image i in row i, column k + 1)."""
    import matplotlib.pyplot as plt

    if not torch.is_tensor(images) or images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty N×1×H×W tensor, got {getattr(images, 'shape', type(images))}")
    if not views or any(not torch.is_tensor(v) or v.shape != images.shape for v in views):
        raise ValueError(f"views must be a non-empty list of tensors shaped like images {tuple(images.shape)}: "
                         "one `augment(images, generator)` call per view")
    columns = [images] + list(views)
    fig, axes = plt.subplots(len(images), len(columns), figsize=(1.2 * len(columns), 1.2 * len(images)),
                             layout="constrained", squeeze=False)
    for row in range(len(images)):
        for col, batch in enumerate(columns):
            axes[row, col].imshow(batch[row, 0].detach().float().cpu(), cmap="gray")
            axes[row, col].set(xticks=[], yticks=[])
            if row == 0:
                axes[row, col].set_title("original" if col == 0 else f"view {col}", fontsize=9)
    fig.suptitle("Random views: crop, flip, brightness/contrast, noise")
    return fig


def render_temperature_sweep(sweep: dict, profile_name: str = ""):
    """The temperature sweep's figure: alignment against uniformity, one point per temperature (coloured by
    log₁₀ τ), and the k-NN accuracy of each run's features. ``sweep`` maps each temperature τ > 0 to a dict of
    floats {"alignment", "uniformity", "k-NN accuracy"}; ``profile_name`` goes into the accuracy panel's title."""
    import matplotlib.pyplot as plt
    import numpy as np

    measures = {"alignment", "uniformity", "k-NN accuracy"}
    if not sweep or any(isinstance(t, bool) or not isinstance(t, numbers.Real) or not t > 0 or
                        not measures <= set(row) for t, row in sweep.items()):
        raise ValueError(f"sweep must map temperatures > 0 to dicts with {sorted(measures)}, e.g. "
                         "{0.1: {'alignment': 1.2, 'uniformity': -3.1, 'k-NN accuracy': 0.7}}")
    fig, (ax_trade, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    points = ax_trade.scatter([r["uniformity"] for r in sweep.values()], [r["alignment"] for r in sweep.values()],
                              c=np.log10(list(sweep)), cmap="viridis", s=60)
    for t, row in sweep.items():
        ax_trade.annotate(f"τ={t}", (row["uniformity"], row["alignment"]), fontsize=8, xytext=(4, 4),
                          textcoords="offset points")
    fig.colorbar(points, ax=ax_trade, label="log₁₀ τ")
    ax_trade.set(xlabel="uniformity (lower = more spread)", ylabel="alignment (lower = positives closer)",
                 title="the temperature trades alignment for uniformity")
    bars = ax_acc.bar([str(t) for t in sweep], [r["k-NN accuracy"] for r in sweep.values()], color="tab:blue")
    ax_acc.bar_label(bars, fmt="%.3f", fontsize=8)
    ax_acc.set(xlabel="temperature τ", ylabel="k-NN test accuracy", ylim=(0, 1),
               title=f"features' k-NN accuracy ({profile_name} profile)" if profile_name else "features' k-NN accuracy")
    return fig


def render_verification_roc(rates: dict, threshold: float, tpr_at: float, fpr_at: float):
    """Verification ROC curves: ``rates`` maps a model's name to {"fpr", "tpr": 1-D tensors of one length, "auc":
    float}; the red point is the operating point (``fpr_at``, ``tpr_at``, both in [0, 1]) at ``threshold``."""
    import matplotlib.pyplot as plt

    if not rates or any(not {"fpr", "tpr", "auc"} <= set(r) or len(r["fpr"]) != len(r["tpr"]) for r in rates.values()):
        raise ValueError("rates must map each model's name to {'fpr', 'tpr', 'auc'} with fpr and tpr of one length "
                         "(torchmetrics' binary_roc and binary_auroc)")
    if not (0 <= tpr_at <= 1 and 0 <= fpr_at <= 1):
        raise ValueError(f"tpr_at and fpr_at are rates in [0, 1], got {tpr_at} and {fpr_at}")
    fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
    for name, r in rates.items():
        ax.plot(r["fpr"], r["tpr"], label=f"{name}: AUC {r['auc']:.3f}")
    ax.plot([fpr_at], [tpr_at], "ro", label=f"threshold {threshold:.3f}: TPR {tpr_at:.2f}, FPR {fpr_at:.2f}")
    ax.plot([0, 1], [0, 1], color="0.7", ls=":")
    ax.set(xlabel="false-positive rate (different classes called same)", ylabel="true-positive rate",
           title="Verification ROC on every pair of test images")
    ax.legend(fontsize=8, loc="lower right")
    return fig
