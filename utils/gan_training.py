"""Training GANs (Chapter 6, 06_generative): one readable step, a loop around it, health plots.

`gan_step` is the lesson: D learns on real images and on *detached* fakes, then G learns through the
updated D. `train_gan` repeats it over random mini-batches and records, step by step, what a GAN
practitioner watches: D(x), D(G(z)) and both losses. `chase_fixed_discriminator` shows the mechanism of
mode collapse: a generator trained against a discriminator that no longer adapts.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from .models.gan import discriminator_loss, generator_loss, mutual_information_loss


def gan_step(G, D, real, labels, opt_g, opt_d, non_saturating: bool = True, info_weight: float = 1.0) -> dict:
    """One discriminator update, then one generator update; returns the step's health numbers."""
    inputs = G.sample_inputs(len(real))
    fake = G(**inputs)
    fake_labels = inputs.get("labels")  # a conditional D judges (image, label) pairs; others ignore it

    # 1. Discriminator. `fake.detach()` cuts the graph at G's output: this loss must move D only, and
    #    G's graph stays intact for step 2 (without it, backward would also fill G's gradients and free the graph).
    real_logits = D(real, labels if fake_labels is not None else None)
    fake_logits = D(fake.detach(), fake_labels)
    loss_d = discriminator_loss(real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # 2. Generator, through the freshly updated D; no detach: the gradient must flow back into G.
    if hasattr(D, "forward_with_codes"):  # InfoGAN: Q must also read the codes back from the fakes
        logits, category_logits, continuous_mean = D.forward_with_codes(fake)
        loss_info = mutual_information_loss(category_logits, continuous_mean, inputs["category"], inputs["continuous"])
    else:
        logits, loss_info = D(fake, fake_labels), torch.zeros((), device=real.device)
    loss_g = generator_loss(logits, non_saturating) + info_weight * loss_info
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {"d_real": torch.sigmoid(real_logits).mean().detach(), "d_fake": torch.sigmoid(fake_logits).mean().detach(),
            "loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_info": loss_info.detach()}


def optimizers(G, D, lr: float = 2e-4):
    """Adam with β₁ = 0.5 (DCGAN's choice: less momentum for a moving target). InfoGAN's Q head learns with G."""
    q_head = list(D.q_head.parameters()) if hasattr(D, "q_head") else []
    d_params = [p for p in D.parameters() if all(p is not q for q in q_head)]
    return (torch.optim.Adam(list(G.parameters()) + q_head, lr=lr, betas=(0.5, 0.999)),
            torch.optim.Adam(d_params, lr=lr, betas=(0.5, 0.999)))


def train_gan(G, D, images: torch.Tensor, labels: torch.Tensor, *, steps: int, batch_size: int = 64,
              lr: float = 2e-4, non_saturating: bool = True, info_weight: float = 1.0, seed: int = 0,
              desc: str = "GAN") -> dict[str, np.ndarray]:
    """Train G and D for ``steps`` updates each on random batches of ``images`` (N×1×28×28 in [-1, 1]).

    Returns the per-step history: ``d_real`` = mean D(x), ``d_fake`` = mean D(G(z)) (before D's update),
    ``loss_d``, ``loss_g``, ``loss_info`` (InfoGAN only; zeros otherwise).
    """
    if steps < 1 or batch_size < 2 or len(images) < batch_size:
        raise ValueError(f"need steps ≥ 1 and 2 ≤ batch_size ≤ len(images); got steps={steps}, "
                         f"batch_size={batch_size}, {len(images)} images")
    device = G.device
    images, labels = images.to(device), labels.to(device)
    D.to(device)
    G.train(), D.train()
    opt_g, opt_d = optimizers(G, D, lr)
    sampler = torch.Generator(device=device).manual_seed(seed)  # draws on the device: no host copy per step
    records = []
    for _ in tqdm(range(steps), desc=desc, leave=False, mininterval=1.0):
        batch = torch.randint(0, len(images), (batch_size,), generator=sampler, device=device)
        records.append(gan_step(G, D, images[batch], labels[batch], opt_g, opt_d, non_saturating, info_weight))
    G.eval(), D.eval()
    return {key: torch.stack([r[key] for r in records]).float().cpu().numpy() for key in records[0]}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` steps (shorter at the start), same length as ``values``."""
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumulative[idx] - cumulative[start]) / (idx - start)


def health_figure(histories: dict[str, dict], window: int | None = None):
    """One row per GAN: D(x) and D(G(z)) on the left, the two losses on the right, smoothed."""
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("pass at least one history, e.g. {'DCGAN': train_gan(...)}")
    fig, axes = plt.subplots(len(histories), 2, figsize=(10, 2.6 * len(histories)), squeeze=False)
    for (name, history), (ax_d, ax_loss) in zip(histories.items(), axes):
        w = window or max(1, len(history["d_real"]) // 30)
        ax_d.plot(smooth(history["d_real"], w), label="D(x)")
        ax_d.plot(smooth(history["d_fake"], w), label="D(G(z))")
        ax_d.axhline(0.5, color="gray", lw=0.8, ls="--")
        ax_d.set(ylim=(0, 1), title=f"{name}: discriminator outputs", xlabel="step")
        ax_loss.plot(smooth(history["loss_d"], w), label="loss D")
        ax_loss.plot(smooth(history["loss_g"], w), label="loss G")
        if history["loss_info"].any():
            ax_loss.plot(smooth(history["loss_info"], w), label="loss info")
        ax_loss.set(title=f"{name}: losses", xlabel="step")
        ax_d.legend(fontsize=8), ax_loss.legend(fontsize=8)
    fig.tight_layout()
    return fig


def chase_fixed_discriminator(G, D, *, steps: int, batch_size: int = 64, lr: float = 1e-3, seed: int = 0):
    """A copy of G trained for ``steps`` against a *frozen* D, with the non-saturating loss.

    With D unable to adapt, G's best move is to send every z to whatever D currently likes most: the
    samples converge onto a few images — mode collapse in its purest form.
    """
    G = copy.deepcopy(G).train()
    D = copy.deepcopy(D).eval().requires_grad_(False)
    opt = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    sampler = torch.Generator(device=G.device).manual_seed(seed)
    for _ in range(steps):
        inputs = G.sample_inputs(batch_size, sampler)
        loss = generator_loss(D(G(**inputs), inputs.get("labels")))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return G.eval()
