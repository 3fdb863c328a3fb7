"""Per-image and per-layer explanations of a checkpoint.

`feature_maps`: every channel of a layer's activation for chosen images;
`filters`: what each channel responds to, by activation maximization;
`gradcam`: class-activation maps (Grad-CAM, Grad-CAM++) and their faithfulness.
`select` chooses the images, `render` holds the shared PNG drawing helpers.
"""
