"""The Lightning module: manual optimisation of codec + heads (generator) and discriminator.

Phase 1 (step < ``train.adversarial_start``): mel + commitment + distillation (+ the speaker
adversary when ``train.lambdas["adv/speaker"]`` > 0).
Phase 2: a discriminator step, then the generator step with adversarial and feature-matching
losses added. Every loss is logged under its ``train.lambdas`` key; the weighted sum is
``loss/total``. ``global_step`` counts generator steps only (the discriminator steps its raw
optimizer), so ``train.steps`` and ``train.adversarial_start`` mean what they say.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ..base.progress import Progress
from ..codec.heads import DistillHeads
from ..codec.model import BridgeCodec
from ..config import CodebooksConfig, TrainConfig
from .adversary import SpeakerAdversary
from .curriculum import acoustic_dropout_probability, bypass_mask, level_mask
from .data import Batch
from .discriminator import MultiScaleStftDiscriminator
from .losses import (MultiScaleMelLoss, feature_matching_loss, hinge_discriminator_loss,
                     hinge_generator_loss, masked_cosine_loss)


@torch.no_grad()
def batch_perplexity(codes: Tensor, frame_mask: Tensor, size: int) -> dict[str, Tensor]:
    """``codebooks/perplexity_cbK``: exp(entropy) of each level's codes over a batch's real
    frames -- codebook usage as a curve (the held-out numbers at the end use ``codec.stats``)."""
    out = {}
    for level in range(codes.shape[1]):
        counts = torch.bincount(codes[:, level][frame_mask], minlength=size).float()
        p = counts[counts > 0] / counts.sum().clamp(min=1)
        out[f"codebooks/perplexity_cb{level}"] = torch.exp(-(p * p.log()).sum())
    return out


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed for everything random in one step (curricula, k-means init, dead-code re-init)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


class BridgeModule(L.LightningModule):
    def __init__(self, codec: BridgeCodec, heads: DistillHeads,
                 discriminator: MultiScaleStftDiscriminator, train: TrainConfig,
                 books: CodebooksConfig, seed: int, config: dict[str, Any],
                 adversary: SpeakerAdversary | None = None):
        super().__init__()
        self.automatic_optimization = False
        self.codec, self.heads, self.discriminator = codec, heads, discriminator
        self.adversary = adversary  # None (train.lambdas["adv/speaker"] == 0): no speaker loss
        self.train_cfg, self.books, self.seed = train, books, seed
        self.config = config  # embedded in every checkpoint
        self.mel_loss = MultiScaleMelLoss(codec.sample_rate, train.mel.windows, train.mel.n_mels)
        self.last_losses: dict[str, float] = {}
        self.ranks_agree: bool | None = None  # set after training (DDP consistency check)

    def configure_optimizers(self):
        cfg = self.train_cfg
        params = list(self.codec.parameters()) + list(self.heads.parameters())
        if self.adversary is not None:  # its gradient reversal lets one optimizer serve both sides
            params += list(self.adversary.parameters())
        gen = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas))
        disc = torch.optim.AdamW(self.discriminator.parameters(), lr=cfg.discriminator.lr,
                                 betas=tuple(cfg.betas))
        return [gen, disc]

    # ------------------------------------------------------------------ losses
    def generator_losses(self, batch: Batch, step: int, generator: torch.Generator):
        """The codec forward and every generator-side loss but the GAN ones: (codec output,
        losses by ``train.lambdas`` key, other logged values)."""
        n_s, n_a = self.codec.n_semantic, self.codec.n_levels - self.codec.n_semantic
        p_acoustic = acoustic_dropout_probability(step, self.books.dropout,
                                                  self.books.dropout_ramp_steps)
        mask = level_mask(batch.audio.shape[0], n_s, n_a, p_acoustic,
                          self.books.quantizer_dropout, generator).to(batch.audio.device)
        bypass = bypass_mask(batch.audio.shape[0], self.books.quantization_rate, mask, generator)
        out = self.codec(batch.audio, batch.frame_mask, mask, bypass)
        heads = self.heads(out.quantized)
        llm, wavlm = self.heads.targets(batch.llm, batch.wavlm)
        losses = {
            "mel/loss": self.mel_loss(out.audio, batch.audio),
            "vq/commitment": out.quantized.commitment,
            "distill/llm": masked_cosine_loss(heads.llm, llm, batch.llm_mask & batch.frame_mask),
            "distill/wavlm": masked_cosine_loss(heads.wavlm, wavlm, batch.frame_mask),
        }
        logs: dict[str, Tensor | float] = {"curriculum/acoustic_dropout": p_acoustic}
        if self.adversary is not None:
            losses["adv/speaker"], logs["adv/speaker_accuracy"] = self.adversary(
                out.quantized, batch.frame_mask, batch.speaker)
        return out, losses, logs

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        cfg, step = self.train_cfg, self.global_step
        seed = step_seed(self.seed, step, self.global_rank)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        opt_g, opt_d = self.optimizers()
        lambdas = cfg.lambdas

        out, losses, logs = self.generator_losses(batch, step, generator)
        adversarial = step >= cfg.adversarial_start

        if adversarial:  # discriminator step on a detached reconstruction
            self.toggle_optimizer(opt_d)
            d_loss = hinge_discriminator_loss(self.discriminator(batch.audio).logits,
                                              self.discriminator(out.audio.detach()).logits)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            self._clip(opt_d)
            opt_d.optimizer.step()  # raw optimizer: global_step counts generator steps only
            self.untoggle_optimizer(opt_d)
            logs["adv/disc_loss"] = d_loss.detach()

        self.toggle_optimizer(opt_g)
        if adversarial:
            fake = self.discriminator(out.audio)
            with torch.no_grad():
                real = self.discriminator(batch.audio)
            losses["adv/gen_loss"] = hinge_generator_loss(fake.logits)
            losses["adv/feat_loss"] = feature_matching_loss(real.features, fake.features)
        total = sum(lambdas[k] * v for k, v in losses.items())
        opt_g.zero_grad()
        self.manual_backward(total)
        self._clip(opt_g)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        logs.update({k: v.detach() for k, v in losses.items()})
        logs["loss/total"] = total.detach()
        logs.update(batch_perplexity(out.quantized.codes, batch.frame_mask, self.books.size))
        self._log(logs)

    def _log(self, logs: dict[str, Tensor | float]) -> None:
        """Mean over processes; every ``train.log_every`` steps (and the last) to the logger,
        at step = generator updates done (1..steps), so a resumed run's curves line up."""
        names = sorted(logs)
        values = torch.stack([torch.as_tensor(logs[k], dtype=torch.float32, device=self.device)
                              for k in names])
        if self.trainer.world_size > 1:
            values = self.trainer.strategy.reduce(values, reduce_op="mean")
        self.last_losses = dict(zip(names, values.tolist()))
        step = self.global_step  # already counts this step's update
        if self.logger is not None and (step % self.train_cfg.log_every == 0
                                        or step == self.trainer.max_steps):
            self.logger.log_metrics(self.last_losses, step=step)

    def _clip(self, optimizer) -> None:
        if self.train_cfg.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.train_cfg.grad_clip,
                                gradient_clip_algorithm="norm")

    def on_train_end(self) -> None:
        """With several processes, check every parameter and buffer (codebooks included) ended
        the same on all of them: a sum per tensor, compared by all-reduced min and max."""
        self.ranks_agree = True
        if self.trainer.world_size == 1 or not torch.distributed.is_initialized():
            return
        sums = torch.stack([t.detach().double().sum() for t in self.state_dict().values()
                            if t.is_floating_point()])
        lo, hi = sums.clone(), sums.clone()
        torch.distributed.all_reduce(lo, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(hi, op=torch.distributed.ReduceOp.MAX)
        self.ranks_agree = bool(torch.equal(lo, hi))

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["semantic_bridge"] = self.config


class StepProgress(L.Callback):
    """Progress of training a person can follow (``base.progress``): steps done of
    ``train.steps``, steps/s, ETA and the current losses; a bar on a terminal, a log line every
    ``every`` steps elsewhere (rank 0 only)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.progress: Progress | None = None

    def on_train_start(self, trainer: L.Trainer, module: "BridgeModule") -> None:
        if trainer.is_global_zero:
            self.progress = Progress("train", trainer.max_steps, "step", every_s=0.0,
                                     initial=trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, module: "BridgeModule", *args: Any) -> None:
        if self.progress is None:
            return
        step = trainer.global_step
        show = step % self.every == 0 or step == trainer.max_steps
        losses = module.last_losses
        status = {k: losses[k] for k in ("loss/total", "mel/loss", "distill/llm") if k in losses}
        if show or self.progress.interactive:
            self.progress.update(step - self.progress.n, **status)

    def on_train_end(self, trainer: L.Trainer, module: "BridgeModule") -> None:
        if self.progress is not None:
            self.progress.close()
