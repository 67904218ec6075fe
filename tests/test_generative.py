"""Tests for Chapter 6's models and GAN training: shapes, losses, the step, the loop's bookkeeping."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.gan_training import chase_fixed_discriminator, gan_step, health_figure, optimizers, smooth, train_gan
from utils.models.autoencoders import (VAE, Autoencoder, SparseAutoencoder, gaussian_kl, mlp, reconstruction_loss,
                                       reparameterize, sparsity_penalty)
from utils.models.gan import (ConditionalBatchNorm2d, DCGANDiscriminator, DCGANGenerator, InfoGANDiscriminator,
                              InfoGANGenerator, MLPDiscriminator, MLPGenerator, discriminator_loss, generator_loss,
                              mutual_information_loss, transposed_conv_output_size, truncated_normal, upsample_block)

IMAGES = torch.rand(4, 1, 28, 28)


# ------------------------------------------------------------------------------------------ autoencoders
def test_autoencoder_shapes():
    model = Autoencoder(code_dim=5, hidden=32)
    assert model.encode(IMAGES).shape == (4, 5) and model(IMAGES).shape == (4, 1, 28, 28)
    assert len(mlp(3, 4, 5)) == 3


def test_sparse_autoencoder_code_is_a_probability():
    code = SparseAutoencoder(code_dim=40, hidden=32).encode(IMAGES)
    assert code.shape == (4, 40) and (code > 0).all() and (code < 1).all()


def test_sparsity_penalty_is_zero_at_the_target_and_positive_elsewhere():
    assert sparsity_penalty(torch.full((8, 3), 0.05), 0.05).item() == pytest.approx(0.0, abs=1e-6)
    assert sparsity_penalty(torch.full((8, 3), 0.5), 0.05).item() > 0
    with pytest.raises(ValueError):
        sparsity_penalty(torch.rand(2, 2), 1.5)


def test_reconstruction_loss_is_summed_bce():
    logits = torch.randn(4, 1, 28, 28)
    expected = F.binary_cross_entropy(torch.sigmoid(logits), IMAGES, reduction="sum") / 4
    torch.testing.assert_close(reconstruction_loss(logits, IMAGES), expected, rtol=1e-4, atol=1e-3)


def test_reparameterize_and_gaussian_kl():
    mean, log_var = torch.randn(3, 2), torch.randn(3, 2)
    noise = torch.randn(3, 2)
    torch.testing.assert_close(reparameterize(mean, log_var, noise), mean + (0.5 * log_var).exp() * noise)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros(3, 2), torch.ones(3, 2))
    torch.testing.assert_close(gaussian_kl(mean, log_var), torch.distributions.kl_divergence(q, p).sum(1))
    assert gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() == 0


def test_vae_shapes_terms_and_samples():
    model = VAE(latent_dim=2, hidden=32)
    logits, mean, log_var = model(IMAGES)
    assert logits.shape == (4, 1, 28, 28) and mean.shape == log_var.shape == (4, 2)
    terms = model.elbo_terms(IMAGES)
    assert set(terms) == {"recon", "kl"} and terms["kl"] >= 0
    samples = model.sample(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1


# ------------------------------------------------------------------------------------------------- GANs
@pytest.mark.parametrize("size, kernel, stride, padding, output_padding, dilation",
                         [(7, 4, 2, 1, 0, 1), (1, 7, 1, 0, 0, 1), (5, 3, 2, 1, 1, 1), (6, 3, 1, 0, 0, 2), (3, 5, 3, 2, 2, 1)])
def test_transposed_conv_output_size_matches_pytorch(size, kernel, stride, padding, output_padding, dilation):
    layer = torch.nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding, dilation=dilation)
    assert layer(torch.zeros(1, 1, size, size)).shape[-1] == transposed_conv_output_size(
        size, kernel, stride, padding, output_padding, dilation)


def test_transposed_conv_output_size_rejects_impossible_settings():
    with pytest.raises(ValueError):
        transposed_conv_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError):
        transposed_conv_output_size(1, 1, padding=3)


def test_losses_match_the_probability_formulas():
    real, fake = torch.randn(5), torch.randn(5)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    torch.testing.assert_close(discriminator_loss(real, fake), -(d_real.log() + (1 - d_fake).log()).mean())
    torch.testing.assert_close(generator_loss(fake, False), (1 - d_fake).log().mean())
    torch.testing.assert_close(generator_loss(fake, True), -d_fake.log().mean())


def test_mutual_information_loss():
    category = torch.tensor([0, 1])
    continuous = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    logits = torch.randn(2, 3)
    expected = F.cross_entropy(logits, category) + 0.5 * continuous.square().sum(1).mean()
    torch.testing.assert_close(mutual_information_loss(logits, torch.zeros(2, 2), category, continuous), expected)


@pytest.mark.parametrize("make", [lambda: (MLPGenerator(8, 16), MLPDiscriminator(16)),
                                  lambda: (DCGANGenerator(8, 4), DCGANDiscriminator(4)),
                                  lambda: (DCGANGenerator(8, 4, "resize"), DCGANDiscriminator(4)),
                                  lambda: (DCGANGenerator(8, 4, num_classes=10), DCGANDiscriminator(4, num_classes=10)),
                                  lambda: (InfoGANGenerator(8, width=4), InfoGANDiscriminator(4))])
def test_generators_and_discriminators_shapes(make):
    G, D = make()
    images, inputs = G.sample(6, torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 28, 28) and images.abs().max() <= 1
    assert D(images, inputs.get("labels")).shape == (6,)


def test_conditional_networks_require_labels_and_info_codes():
    with pytest.raises(ValueError):
        DCGANGenerator(8, 4, num_classes=10)(torch.zeros(2, 8))
    with pytest.raises(ValueError):
        DCGANDiscriminator(4, num_classes=10)(IMAGES)
    with pytest.raises(ValueError):
        upsample_block(4, 4, "bilinear")
    logits, category, continuous = InfoGANDiscriminator(4, categories=10, continuous=2).forward_with_codes(IMAGES)
    assert logits.shape == (4,) and category.shape == (4, 10) and continuous.shape == (4, 2)


def test_sample_accepts_fixed_inputs():
    G = DCGANGenerator(8, 4, num_classes=10)
    _, inputs = G.sample(3, labels=torch.tensor([7, 7, 7]))
    assert inputs["labels"].tolist() == [7, 7, 7]


def test_gan_step_updates_both_networks_and_detach_keeps_d_step_off_g():
    torch.manual_seed(0)
    G, D = DCGANGenerator(8, 4), DCGANDiscriminator(4)
    opt_g, opt_d = optimizers(G, D)
    g_before = [p.clone() for p in G.parameters()]
    d_before = [p.clone() for p in D.parameters()]
    record = gan_step(G, D, IMAGES * 2 - 1, torch.zeros(4, dtype=torch.long), opt_g, opt_d)
    assert set(record) == {"d_real", "d_fake", "loss_d", "loss_g", "loss_info"}
    assert all(not torch.equal(a, b) for a, b in zip(g_before, G.parameters()) if a.requires_grad)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, D.parameters()))


def test_infogan_q_head_learns_with_the_generator():
    G, D = InfoGANGenerator(8, width=4), InfoGANDiscriminator(4)
    opt_g, opt_d = optimizers(G, D)
    q_ids = {id(p) for p in D.q_head.parameters()}
    assert q_ids <= {id(p) for group in opt_g.param_groups for p in group["params"]}
    assert not q_ids & {id(p) for group in opt_d.param_groups for p in group["params"]}


def test_train_gan_history_and_input_checks():
    torch.manual_seed(0)
    images, labels = torch.rand(32, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (32,))
    history = train_gan(InfoGANGenerator(8, width=4), InfoGANDiscriminator(4), images, labels, steps=3, batch_size=8)
    assert all(len(v) == 3 for v in history.values()) and history["loss_info"].all()
    assert ((history["d_real"] > 0) & (history["d_real"] < 1)).all()
    with pytest.raises(ValueError):
        train_gan(MLPGenerator(8, 16), MLPDiscriminator(16), images, labels, steps=1, batch_size=64)


def test_health_figure_and_smooth():
    history = {k: np.linspace(0.1, 0.9, 20) for k in ("d_real", "d_fake", "loss_d", "loss_g", "loss_info")}
    fig = health_figure({"a": history, "b": history})
    assert len(fig.axes) == 4
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0]), 2), [1.0, 2.0, 4.0])
    with pytest.raises(ValueError):
        health_figure({})


def test_chase_fixed_discriminator_leaves_the_originals_untouched():
    torch.manual_seed(0)
    G, D = MLPGenerator(8, 16), MLPDiscriminator(16)
    state = {k: v.clone() for k, v in G.state_dict().items()}
    chased = chase_fixed_discriminator(G, D, steps=2, batch_size=4)
    assert chased is not G and all(torch.equal(state[k], v) for k, v in G.state_dict().items())
    assert all(p.requires_grad for p in D.parameters())


# ------------------------------------------------------------------------------------------ BigGAN's tools
def test_truncated_normal_stays_inside_and_has_the_truncated_moments():
    from scipy.stats import truncnorm
    z = truncated_normal(20_000, 8, 0.5, torch.Generator().manual_seed(0))
    assert z.shape == (20_000, 8) and z.abs().max() <= 0.5
    assert abs(z.std().item() - truncnorm.std(-0.5, 0.5)) < 0.005 and abs(z.mean().item()) < 0.005
    again = truncated_normal(20_000, 8, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)                                        # seeded: reproducible
    plain = truncated_normal(5, 3, None, torch.Generator().manual_seed(1))
    assert torch.equal(plain, torch.randn(5, 3, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="positive"):
        truncated_normal(2, 2, 0.0)


def test_conditional_batchnorm_is_batchnorm_with_a_per_class_affine():
    cbn = ConditionalBatchNorm2d(3, num_classes=4, embed_dim=5)
    x, labels = torch.randn(8, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    gamma, beta = cbn.affine(torch.arange(4))
    assert gamma.shape == beta.shape == (4, 3) and not torch.allclose(gamma[0], gamma[1])   # classes differ at init
    out = cbn(x, labels)
    for c in range(4):
        expected = F.batch_norm(x, None, None, gamma[c], beta[c], training=True)
        torch.testing.assert_close(out[labels == c], expected[labels == c])
    cbn.eval()
    for c in range(4):
        reference = torch.nn.BatchNorm2d(3).eval()
        reference.load_state_dict({"weight": gamma[c], "bias": beta[c], **cbn.norm.state_dict()})
        torch.testing.assert_close(cbn(x, labels)[labels == c], reference(x[labels == c]))
    with pytest.raises(ValueError, match="one label per image"):
        cbn(x, labels[:3])


def test_dcgan_generator_conditioned_through_batchnorm():
    generator = DCGANGenerator(8, width=4, num_classes=10, conditioning="batchnorm")
    assert generator.embed is None
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in generator.modules()) == 2
    assert not any(type(m) is torch.nn.BatchNorm2d and m.affine for m in generator.modules())
    images, inputs = generator.sample(6, torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 28, 28) and set(inputs) == {"z", "labels"}
    z = torch.randn(2, 8)
    generator.eval()
    with torch.no_grad():                                               # classes have their own gains from the start
        assert not torch.allclose(generator(z, torch.tensor([3, 3])), generator(z, torch.tensor([4, 4])))
    with pytest.raises(ValueError, match="labels"):
        generator(z)
    with pytest.raises(ValueError, match="conditioning"):
        DCGANGenerator(8, num_classes=10, conditioning="projection")
