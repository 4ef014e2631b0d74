"""Training losses: Cox partial likelihood, segmentation (Dice, focal), discrete-time survival."""

from .cox import cox_partial_likelihood_loss

__all__ = ["cox_partial_likelihood_loss"]
