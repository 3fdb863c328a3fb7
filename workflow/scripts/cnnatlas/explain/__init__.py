"""Per-image and per-layer explanations of a checkpoint.

`feature_maps`: every channel of a layer's activation for chosen images;
`filters`: what each channel responds to, by activation maximization;
`saliency`: saliency methods (Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM, Score-CAM), one
class per module, in a registry by name;
`gradcam`: their maps drawn over the chosen images and their faithfulness;
`trust`: the sanity checks of every method (`perturb`: deletion/insertion and ROAD,
`randomise`: the model-parameter randomisation cascade), aggregates and verdicts.
`select` chooses the images, `render` holds the shared PNG drawing helpers.
"""
