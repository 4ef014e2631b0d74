"""AdaMSSRegressor's training stages: stage I (segmentation), stage II (survival) and the
multi-task network, with their batches, losses, optimisers and validation scores.

The stages call ``self._run`` (defined on the estimator, next to the training loop it calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..evaluation.metrics import dice_score
from ..losses.discrete_time import discrete_time_nll, predicted_time
from ..losses.segmentation import dice_loss, focal_loss
from ..networks.adamss import AdaMSS
from ..training import balanced_batches, random_affine, random_batches, random_crop, scaled_step_lr
from ._adamss_params import _PAPER_ITER, _PAPER_VALIDATE_EVERY
from ._deep import image_tensor

__all__ = ["transfer_pretrained_weights"]

# validation scores of ``_val_scores`` that are losses (the kept iteration minimises them;
# every other score is maximised)
_LOSS_SCORES = frozenset({"val_nll", "val_loss"})


def transfer_pretrained_weights(source: AdaMSS, target: AdaMSS) -> None:
    """Copy the encoder, decoder and segmentation head of ``source`` into ``target``.

    Strict: every tensor must match in name and shape (the two networks must share their
    image architecture), so no layer is silently left at its random initialisation (the
    authors' ``strict=False`` left their stage-II decoder random). The survival head of
    ``target`` is not touched: its input width depends on the stage-II tabular features.
    """
    for part in ("encoder", "decoder", "seg_head"):
        getattr(target, part).load_state_dict(getattr(source, part).state_dict(), strict=True)


@dataclass
class _Fit:
    """Everything a training stage needs (built once in ``fit``)."""

    X: np.ndarray
    modalities: tuple
    device: torch.device
    rng: np.random.Generator
    gen: torch.Generator
    train_idx: np.ndarray
    val_idx: np.ndarray
    crop: tuple
    augment: dict | None
    event: np.ndarray
    time: np.ndarray
    s: torch.Tensor
    f: torch.Tensor
    extra: torch.Tensor | None = None


class _AdaMSSStages:
    """Training stages of :class:`AdaMSSRegressor`."""

    def _build_network(self, n_extra=0) -> AdaMSS:
        return AdaMSS(
            n_modalities=len(self.modalities_),
            n_intervals=self.n_intervals,
            n_extra_features=n_extra,
            single_channels=self.single_channels,
            fuse_channels=self.fuse_channels,
            n_convs=self.n_convs,
            fusion=self.fusion,
            seg_channels=1,
            hidden_features=self.hidden_features,
            dropout=self.dropout,
        )

    def _optimizer(self, net, lrs, max_iter):
        head = {id(w) for w in net.head_weights()}
        groups = [
            {"params": [p for p in net.parameters() if id(p) not in head], "weight_decay": 0.0},
            {"params": net.head_weights(), "weight_decay": 2.0 * self.l2},
        ]
        opt = torch.optim.Adam(groups, lr=lrs[0])
        bounds = [m * _PAPER_ITER for m in self.lr_milestones]
        return opt, scaled_step_lr(opt, lrs, bounds, _PAPER_ITER, max_iter)

    def _validate_every(self, max_iter):
        if self.validate_every is not None:
            return self.validate_every
        return max(1, round(_PAPER_VALIDATE_EVERY * max_iter / _PAPER_ITER))

    def _survival_monitor(self, multitask):
        """Key of ``_val_scores`` that picks the kept survival iteration (None: the last)."""
        if self.monitor == "nll":
            return "val_loss" if multitask else "val_nll"
        if self.monitor == "c_index":
            return "mean_dice_cindex" if multitask else "cindex"
        return None

    def _batch(self, ctx, idx, with_mask):
        rows = ctx.train_idx[idx]
        images = image_tensor(
            ctx.X, ctx.modalities, rows, device=ctx.device, intensity=self._intensity()
        )
        masks = None
        if with_mask:
            m = np.asarray(ctx.X[self.mask_field][rows], dtype=np.float32)
            masks = torch.from_numpy(m).unsqueeze(1).to(ctx.device)
        if ctx.augment is not None:
            images, masks = random_affine(images, masks, **ctx.augment, generator=ctx.gen)
        if ctx.crop != tuple(images.shape[2:]):
            cropped = random_crop(
                (images,) if masks is None else (images, masks), ctx.crop, ctx.gen
            )
            images, masks = cropped if masks is not None else (cropped[0], None)
        extra = None if ctx.extra is None else ctx.extra[rows]
        return rows, images, masks, extra

    def _seg_loss(self, logits, masks):
        dice = dice_loss(logits, masks)
        focal = focal_loss(logits, masks, alpha=self.focal_alpha, gamma=self.focal_gamma)
        return dice, focal

    def _surv_loss(self, logits, ctx, rows):
        # mean over patients and intervals: the authors' scaling, which sets the balance
        # against the L2 penalty of the head
        rows_t = torch.as_tensor(rows, device=ctx.device)
        return discrete_time_nll(logits.float(), ctx.s[rows_t], ctx.f[rows_t]) / self.n_intervals

    def _val_outputs(self, net, ctx, task):
        """Full-volume predictions for the validation patients (eval mode, no grad)."""
        seg, surv = [], []
        for start in range(0, len(ctx.val_idx), self.predict_batch_size):
            rows = ctx.val_idx[start : start + self.predict_batch_size]
            images = image_tensor(
                ctx.X, ctx.modalities, rows, device=ctx.device, intensity=self._intensity()
            )
            extra = None if ctx.extra is None or task == "segmentation" else ctx.extra[rows]
            out = net(images, extra, task=task)
            if out.seg_logits is not None:
                seg.append(
                    (torch.sigmoid(out.seg_logits[:, 0].float()) > self.mask_threshold)
                    .cpu()
                    .numpy()
                )
            if out.survival_logits is not None:
                surv.append(out.survival_logits.float().cpu().numpy())
        return (np.concatenate(seg) if seg else None), (np.concatenate(surv) if surv else None)

    def _val_scores(self, ctx, seg, surv_logits):
        scores = {}
        if seg is not None:
            truth = np.asarray(ctx.X[self.mask_field][ctx.val_idx])
            scores["dice"] = float(np.mean(dice_score(truth, seg)))
        if surv_logits is not None:
            from sksurv.metrics import concordance_index_censored

            ev, t = ctx.event[ctx.val_idx], ctx.time[ctx.val_idx]
            logits = torch.from_numpy(surv_logits)
            rows = torch.as_tensor(ctx.val_idx, device=ctx.s.device)
            nll = discrete_time_nll(logits, ctx.s[rows].cpu(), ctx.f[rows].cpu())
            scores["val_nll"] = float(nll) / self.n_intervals  # the training loss's scaling
            risk = -predicted_time(torch.sigmoid(logits).numpy(), self.time_bins_)
            try:
                scores["cindex"] = float(concordance_index_censored(ev, t, risk)[0])
            except (ValueError, ZeroDivisionError):  # no event / no comparable pair
                scores["cindex"] = math.nan
        if seg is not None and surv_logits is not None:  # multi-task: one model for both tasks
            scores["mean_dice_cindex"] = 0.5 * (scores["dice"] + scores["cindex"])
            scores["val_loss"] = (1.0 - scores["dice"]) + scores["val_nll"]
        return scores

    def _init_segmentation_bias(self, net, ctx):
        r"""Start the tumour head at the training foreground fraction instead of :math:`p = 0.5`.

        The head's bias is set to :math:`\operatorname{logit}(\pi)`, with :math:`\pi` the
        share of tumour voxels in the training masks (clipped to [1e-4, 0.5]): the prior
        initialisation of RetinaNet's focal loss (Lin et al., 2017). At :math:`p = 0.5`
        everywhere, the background alone makes the soft Dice close to 0, and its
        gradient is too small for Adam to take the background down within a short schedule.
        """
        masks = ctx.X[self.mask_field]
        voxels = sum(int(np.count_nonzero(masks[i])) for i in ctx.train_idx)
        pi = voxels / (len(ctx.train_idx) * float(np.prod(masks.shape[1:])))
        pi = min(max(pi, 1e-4), 0.5)
        with torch.no_grad():
            net.seg_head.bias.fill_(math.log(pi / (1.0 - pi)))

    def _train_segmentation(self, ctx):
        max_iter = self.max_iter_segmentation or self.max_iter
        net = self._build_network()
        self._init_segmentation_bias(net, ctx)

        def loss_fn(module, idx):
            _, images, masks, _ = self._batch(ctx, idx, with_mask=True)
            dice, focal = self._seg_loss(module(images, task="segmentation").seg_logits, masks)
            return {"loss": dice + focal, "dice_loss": dice, "focal_loss": focal}

        batches = random_batches(len(ctx.train_idx), self.batch_size, ctx.rng)
        res = self._run(
            net,
            ctx,
            loss_fn,
            batches,
            self.stage1_lr,
            max_iter,
            "segmentation",
            "dice",
            "AdaMSS stage I (segmentation)",
        )
        return net, res

    def _init_survival_bias(self, net, ctx):
        r"""Start the survival head at the population curve instead of :math:`p_j = 0.5`.

        The output bias is set to the logit of the no-covariate maximum-likelihood estimate of
        the discrete-time model on the training patients, :math:`\hat p_j = 1 - d_j / r_j`
        (:math:`d_j = \sum_i f_{ij}` events in interval :math:`j`, :math:`r_j =
        \sum_i (s_{ij} + f_{ij})` patients contributing to it), clipped to [0.01, 0.99]. With
        ``N = 10`` intervals a logit of 0 would start every patient at :math:`S(b_N) = 2^{-10}`.
        """
        rows = torch.as_tensor(ctx.train_idx, device=ctx.device)
        s, f = ctx.s[rows].double(), ctx.f[rows].double()
        at_risk = (s + f).sum(dim=0)
        p = 1.0 - f.sum(dim=0) / at_risk.clamp(min=1.0)
        p = torch.where(at_risk > 0, p, torch.full_like(p, 0.5)).clamp(0.01, 0.99)
        with torch.no_grad():
            net.survival_head.net[-1].bias.copy_(torch.logit(p).float())

    def _survival_batches(self, ctx):
        n_ev = max(1, self.batch_size // 2)
        return balanced_batches(ctx.event[ctx.train_idx], n_ev, self.batch_size - n_ev, ctx.rng)

    def _train_survival(self, ctx, init):
        max_iter = self.max_iter_survival or self.max_iter
        net = self._build_network(0 if ctx.extra is None else ctx.extra.shape[1])
        if init is not None:
            transfer_pretrained_weights(init, net)
        self._init_survival_bias(net, ctx)

        def loss_fn(module, idx):
            rows, images, _, extra = self._batch(ctx, idx, with_mask=False)
            nll = self._surv_loss(module(images, extra, task="survival").survival_logits, ctx, rows)
            return {"loss": nll, "nll": nll}

        lrs = self.stage2_lr if init is not None else self.stage1_lr
        res = self._run(
            net,
            ctx,
            loss_fn,
            self._survival_batches(ctx),
            lrs,
            max_iter,
            "survival",
            self._survival_monitor(multitask=False),
            "AdaMSS stage II (survival)",
        )
        return net, res

    def _train_multitask(self, ctx):
        max_iter = self.max_iter_survival or self.max_iter
        net = self._build_network(0 if ctx.extra is None else ctx.extra.shape[1])
        self._init_segmentation_bias(net, ctx)
        self._init_survival_bias(net, ctx)

        def loss_fn(module, idx):
            rows, images, masks, extra = self._batch(ctx, idx, with_mask=True)
            out = module(images, extra)
            dice, focal = self._seg_loss(out.seg_logits, masks)
            nll = self._surv_loss(out.survival_logits, ctx, rows)
            return {"loss": dice + focal + nll, "dice_loss": dice, "focal_loss": focal, "nll": nll}

        res = self._run(
            net,
            ctx,
            loss_fn,
            self._survival_batches(ctx),
            self.stage1_lr,
            max_iter,
            "both",
            self._survival_monitor(multitask=True),
            "AdaMSS multi-task",
        )
        return net, res
