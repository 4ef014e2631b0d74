"""Training losses: Cox partial likelihood, segmentation (Dice, focal), discrete-time survival."""

from .cox import CoxLoss, cox_partial_likelihood_loss

__all__ = ["CoxLoss", "cox_partial_likelihood_loss"]
