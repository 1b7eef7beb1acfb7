"""Directions in a generator's latent space found without an edit to imitate, and the
closed-form ones solved for an edit. One module per method:

- closed_form: Spingarn-Eliezer et al.'s least squares on a linear first layer (for an edit);
- sefa: Shen & Zhou's closed-form factorisation of the weights that read the latent;
- ganspace: Härkönen et al.'s PCA of sampled w, or of a layer's activations regressed to z;
- interfacegan: Shen et al.'s linear SVM separating latents by an attribute score;
- jacobian: the top right-singular vectors of the generator's Jacobian (local or averaged).

Each of the unsupervised methods returns a `Directions` (common.py), which becomes ordinary
one-slider linear walks, so every command that takes a walk takes them.
"""
from .closed_form import CLOSED_FORM_EDITS, closed_form_direction, closed_form_walk, first_layer_error
from .common import Directions, DirectionSpace, direction_space, direction_walks

__all__ = ["CLOSED_FORM_EDITS", "closed_form_direction", "closed_form_walk", "first_layer_error",
           "Directions", "DirectionSpace", "direction_space", "direction_walks"]
