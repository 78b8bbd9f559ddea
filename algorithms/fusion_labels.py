"""Labels the fusion algorithms share: the help on modes and the names of fused layers."""


FUSION_HELP = (
    "<b>Mode</b>: <i>paper</i> = eq. 3 of the paper exactly, Geo_f = Geo_Lre + Geo_H + Σ ai·MS_Hi "
    "(the low-frequency geochemistry is replaced by its regression on the image, so what the image "
    "does not explain is lost); <i>coherent</i> = Geo_L + Geo_H + Σ ai·MS_Hi (keeps the measured "
    "geochemistry and adds the image detail; block-averaged back to the survey support it returns "
    "the input).<br><b>Regression</b>: <i>global</i> = one linear fit for the whole area; "
    "<i>local</i> = one fit per geological unit (K-means units), units with too few pixels fall "
    "back to the global fit.<br><b>Levels</b>: Laplacian pyramid depth; 0 = automatic, "
    "round(log2(sample spacing / pixel size)).<br><b>Log transform</b>: fit and fuse log10 of the "
    "concentrations (right-skewed data), back-transformed at the end; off in the paper.<br>"
    "Reference: Remote Sensing 2023, 15(8), 1993, §4.3, eqs. 1–3."
)


def fused_name(element, regression, mode):
    """Layer/band name of a fused layer, e.g. "Cu fused (local, coherent)"."""
    if mode == "adaptive":  # no global/local choice in that mode
        return f"{element} fused (adaptive)"
    return f"{element} fused ({regression}, {mode})"
