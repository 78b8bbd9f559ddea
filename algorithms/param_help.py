"""The help text of every parameter of every algorithm, in one place.

Processing shows a parameter's help as the tooltip of its widget in the dialog and
in the generated documentation (``qgis_process help``); an algorithm's
``shortHelpString`` stays the overview. :meth:`GeochemAlgorithm.addParameter
<geochem_fusion.algorithms.base.GeochemAlgorithm.addParameter>` applies these texts
when a parameter is declared, so no ``initAlgorithm`` repeats them:

- :data:`BY_ALGORITHM` ``[(algorithm name, PARAMETER)]`` when an algorithm's
  parameter means something of its own;
- else :data:`SHARED` ``[PARAMETER]`` (the same parameter in several algorithms).

``tests/qgis/test_desktop.py`` checks that every parameter of every algorithm
gets a text.
"""

SHARED = {
    "SAMPLES": "Point layer of the geochemical survey, one feature per sample. Samples in "
               "another CRS than the image are reprojected; samples without a value are left "
               "out and counted in the log.",
    "FIELD": "Numeric field holding the concentrations (ppm) of the element to map.",
    "IMAGE": "Co-registered multiband image (e.g. from Prepare Sentinel-2 / Prepare ASTER) in "
             "a projected CRS (metres). Nodata pixels stay nodata in the outputs.",
    "LOG_TRANSFORM": "Work on log10 of the concentrations (recommended for right-skewed "
                     "geochemical data); results are back-transformed to ppm. Every value "
                     "must then be positive (see Below detection).",
    "VARIOGRAM": "Variogram model of the ordinary kriging. 'auto' fits the spherical, "
                 "exponential, gaussian and linear models and keeps the one with the lowest "
                 "leave-one-out error; its parameters are fitted to the samples either way.",
    "SEED": "Seed of the random choices (pixel subsamples, K-means starts, folds): the same "
            "seed gives the same result.",
    "SAMPLE_SIZE": "The fits see at most this many random valid pixels (every pixel is then "
                   "computed with the fitted model): larger is slower and barely changes "
                   "the result.",
    "LEVELS": "Depth of the Laplacian pyramid (number of halvings): the low-frequency part "
              "keeps structures larger than about 2^levels pixels. 0 = automatic, "
              "round(log2(sample spacing / pixel size)).",
    "MODE": "'paper' = eq. 3 of the paper exactly (the low-frequency geochemistry is "
            "replaced by its regression on the image); 'coherent' = keep the kriged "
            "geochemistry and add the image detail (block-averaged to the survey support it "
            "returns the input).",
    "REGRESSION": "'global' = one linear fit of the geochemistry on the image features for "
                  "the whole area; 'local' = one fit per geological unit (K-means), units "
                  "with too few pixels use the global fit.",
    "N_CLUSTERS": "Number of K-means geological units (2 or more) for the local regression.",
    "EXTENT": "Only this area is processed; empty = all of it.",
    "OUTPUT": "Where to write the result (GeoTIFF); a temporary file when left empty.",
    "OUTPUT_REPORT": "Optional HTML report (figures embedded): what was done, with which "
                     "parameters, and how it came out.",
    "OUTPUT_TABLE": "Optional table (any vector format, or CSV) with the numbers of the "
                    "report, one row per item.",
    "OUTPUT_COEFFICIENTS": "Optional table of the regression: intercept and gain of each "
                           "image feature, per element and per unit.",
    "OUTPUT_VARIANCE": "Optional kriging variance on the kriging grid: (ppm)², or (log10 "
                       "ppm)² with the log transform. High where samples are far apart.",
    "SENSOR": "Which sensor the image comes from, so that its bands can be told apart: "
              "ASTER, Sentinel-2 or custom (then give the band map).",
    "BAND_MAP": "Which raster band (1-based) holds which sensor band, e.g. "
                "'B2=1,B3=2,B4=3,B8=4,B11=5,B12=6'. Empty = guessed from the band "
                "descriptions, else the sensor's usual band order.",
    "INPUT": "The raster to process.",
    "BELOW_DETECTION": "What to do with values that are not measurements: ≤ 0 with the log "
                       "transform, '<5' texts, or codes such as −1 or −9999. 'refuse' stops and "
                       "names them; the replacements (half the smallest positive value, or a "
                       "fraction of each sample's detection limit) are counted in the log.",
    "DL_FRACTION": "With 'replace by a fraction of each sample's detection limit': the "
                   "fraction used (0.5 = half the limit, the usual choice).",
    "NEGATIVE_BELOW": "Read a negative value as 'below the detection limit |value|' (the "
                      "laboratory convention −5 = <5) instead of a missing value.",
    "MISSING_CODES": "Values that mean 'not analysed' (e.g. −9999, −99), comma-separated: "
                     "those samples are left out and counted in the log.",
    "QUALIFIERS": "Read a qualifier column next to the element field (e.g. Cu_T holding '<' "
                  "or '>') when there is one: '<' marks a value below detection.",
    "CLIP_NEGATIVE": "A fused concentration below 0 is impossible: clip it to 0 (default). "
                     "Either way the negative pixels are counted per element in the log, the "
                     "report and the layer's metadata.",
    "NUGGET": "Fix the variogram nugget (kriged-space units squared); empty = fitted to the "
              "experimental variogram.",
    "SILL": "Fix the total sill (or the slope of the linear model); empty = fitted.",
    "RANGE": "Fix the variogram range in map units; empty = fitted.",
    "MAX_LAG": "Largest distance between sample pairs used for the experimental variogram, "
               "map units; 0 = a third of the diagonal of the samples' extent.",
    "NLAGS": "Number of distance classes of the experimental variogram.",
    "LAG_WIDTH": "Width of a distance class, map units; 0 = maximum lag / number of lags.",
    "ANISOTROPY": "Geometric anisotropy: none, auto (estimated from directional variograms "
                  "and kept only when leave-one-out improves), or manual (azimuth and ratio "
                  "below).",
    "ANISOTROPY_ANGLE": "Manual anisotropy: azimuth of the major axis, degrees clockwise from "
                        "north.",
    "ANISOTROPY_RATIO": "Manual anisotropy: major range / minor range (1 = isotropic).",
}
"""Help of a parameter that means the same in every algorithm that has it."""

BY_ALGORITHM = {
    # krigesamples
    # fusegeochemistry
    ("fusegeochemistry", "OUTPUT_UNCERTAINTY"): "Optional standard deviation of the prediction, "
                                                "one band per element, in the fused layer's "
                                                "units: the trend's estimation variance plus the "
                                                "residual kriging variance (adaptive mode only; "
                                                "the paper and coherent modes have none).",
    # fusemosaic
    ("fusemosaic", "TILES"): "The image as tiles (GeoTIFFs or VRTs of one CRS and band "
                             "layout); each tile is fused as one task and written as its own "
                             "Cloud-Optimized GeoTIFF.",
    ("fusemosaic", "SCHEDULER"): "Where the tiles are computed: 'local' starts a Dask cluster "
                                 "on this machine; tcp://host:port uses a running Dask "
                                 "scheduler.",
    ("fusemosaic", "WORKERS"): "Worker threads of the local Dask cluster; 0 = one per CPU. "
                               "Ignored with a tcp:// scheduler.",
    ("fusemosaic", "OUTPUT_FOLDER"): "Folder of the fused tiles and of the VRT mosaic that "
                                     "ties them together; tiles already complete there are "
                                     "skipped (resume).",
    ("krigesamples", "CELL_SIZE"): "Cell size of the kriging grid in map units; 0 = a quarter "
                                   "of the median nearest-neighbour sample spacing (finer adds "
                                   "nothing but time).",
    ("krigesamples", "EXTENT"): "Area of the kriging grid; empty = the samples' bounding box. "
                                "Choose an image layer to krige over the whole image.",
    ("krigesamples", "OUTPUT"): "Kriged concentrations (ppm) on the kriging grid (GeoTIFF).",
    # fusegeochemistry
    ("fusegeochemistry", "FIELD"): "One or several numeric fields of concentrations (ppm): "
                                   "the image work is done once and each element becomes "
                                   "one band of the outputs.",
    ("fusegeochemistry", "MODE"): "'adaptive' (default, recommended): regress the samples on "
                                  "the image around them, krige what the image does not "
                                  "explain, and fall back to kriging alone when the image "
                                  "does not help. 'paper' and 'coherent': the paper's "
                                  "Laplacian-pyramid fusion (see Pyramid levels).",
    ("fusegeochemistry", "FEATURES"): "What the image contributes: 'all bands' (default), "
                                      "'bands-PC2' (the paper's PC2 of the bands), "
                                      "'indices-PC2' (PC2 of the mineral band ratios; needs "
                                      "the sensor), or 'chosen PCs'.",
    ("fusegeochemistry", "PCS"): "Principal components used with the features 'chosen PCs', "
                                 "e.g. '2,3' (1-based).",
    ("fusegeochemistry", "SENSOR"): "Only for the features 'indices-PC2': the sensor whose "
                                    "mineral band ratios are computed.",
    ("fusegeochemistry", "BAND_MAP"): "Only for the features 'indices-PC2': which raster "
                                      "band (1-based) holds which sensor band, e.g. "
                                      "'B2=1,B3=2'. Empty = from the band descriptions.",
    ("fusegeochemistry", "REGRESSION"): "'global' = one fit for the whole area; 'local' = "
                                        "one fit per K-means geological unit (in every "
                                        "mode; K-means runs only then).",
    ("fusegeochemistry", "N_CLUSTERS"): "Number of K-means geological units; used only with "
                                        "the local regression.",
    ("fusegeochemistry", "LEVELS"): "Paper and coherent modes only: depth of the Laplacian "
                                    "pyramid; 0 = automatic from the sample spacing and the "
                                    "pixel size.",
    ("fusegeochemistry", "SEED"): "Seed of the pixel subsamples and of K-means: the same "
                                  "seed gives the same layers.",
    ("fusegeochemistry", "OUTPUT"): "The fused layer on the image grid (GeoTIFF): one band "
                                    "per element, in ppm.",
    ("fusegeochemistry", "OUTPUT_KRIGED"): "Optional: kriging alone (ppm) on the coarse "
                                           "kriging grid, to compare with the fused layer.",
    ("fusegeochemistry", "OUTPUT_FEATURES"): "Optional: the image features the fusion used, "
                                             "on the image grid.",
    ("fusegeochemistry", "OUTPUT_UNITS"): "Optional: the K-means geological units on the "
                                          "image grid (local regression only).",
    # crossvalidatefusion
    ("crossvalidatefusion", "BLOCK_SIZE"): "Side of the square blocks of samples held out "
                                           "together, in map units; 0 = 5 median sample "
                                           "spacings, so no held-out sample has a training "
                                           "sample next to it.",
    ("crossvalidatefusion", "N_FOLDS"): "Number of folds the blocks are dealt to; each fold "
                                        "is held out once while every method is refitted "
                                        "on the others.",
    ("crossvalidatefusion", "OUTPUT_TABLE"): "Table of the errors (RMSE, CC, bias) of each "
                                             "method at the held-out samples.",
    # evaluatefusion
    ("evaluatefusion", "BASELINE"): "With an image given: score the image alone next to the "
                                    "fused layers, as each of its bands or as its first "
                                    "principal components, so that a score the image earns "
                                    "by itself shows.",
    ("evaluatefusion", "N_COMPONENTS"): "How many principal components of the image are scored "
                                        "as image-only layers (with 'first principal "
                                        "components').",
    ("evaluatefusion", "FUSED"): "Rasters to score; every band is one layer, named by its "
                                 "band description (e.g. a fused layer and kriging alone).",
    ("evaluatefusion", "BAND_FILTER"): "Keep only the bands whose description contains this "
                                       "text (e.g. 'Cu'); empty = every band.",
    ("evaluatefusion", "REFERENCE_SAMPLES"): "A denser or independent survey: the layers are "
                                             "sampled bilinearly at its points (CC, RMSE, "
                                             "bias).",
    ("evaluatefusion", "REFERENCE_FIELD"): "Field of the reference samples with the "
                                           "concentrations.",
    ("evaluatefusion", "REFERENCE_RASTER"): "A detailed map (or the truth of a simulation) "
                                            "to compare pixel by pixel (CC, RMSE, SSIM, "
                                            "anomaly overlap).",
    ("evaluatefusion", "REFERENCE_BAND"): "Band of the reference raster to compare with.",
    ("evaluatefusion", "INPUT_SAMPLES"): "The survey the layers were made from: the Wald "
                                         "consistency check compares the layers averaged "
                                         "over the survey support with it.",
    ("evaluatefusion", "INPUT_FIELD"): "Field of the input samples with the concentrations.",
    ("evaluatefusion", "INPUT_GEOCHEM"): "Instead of the input samples: the coarse raster "
                                         "the layers were made from (its cells are the "
                                         "support).",
    ("evaluatefusion", "INPUT_GEOCHEM_BAND"): "Band of the input geochemistry raster.",
    ("evaluatefusion", "OCCURRENCES"): "Known mineral occurrences (points): how many of "
                                       "them fall on the highest values of each layer "
                                       "(success-rate curve, AUC).",
    ("evaluatefusion", "PERCENTILES"): "Percentiles above which a pixel is anomalous, for "
                                       "the anomaly overlap (IoU) with the reference, e.g. "
                                       "'90,95'.",
    ("evaluatefusion", "SUPPORT"): "Side of the blocks the layers are averaged over for the "
                                   "consistency check, in map units; 0 = the median sample "
                                   "spacing (or the input raster's cells).",
    ("evaluatefusion", "OUTPUT_TABLE"): "Table with one row per layer and one column per "
                                        "metric.",
    # mineralindices
    ("mineralindices", "IMAGE"): "Reflectance stack of the sensor (e.g. from Prepare ASTER "
                                 "or Prepare Sentinel-2).",
    ("mineralindices", "INDICES"): "Indices to compute; empty = every index the bands "
                                   "allow (those needing absent bands are listed in the log).",
    ("mineralindices", "OUTPUT"): "One band per index, named with the index and its formula.",
    # principalcomponents
    ("principalcomponents", "INPUT"): "Raster whose bands (or mineral indices) are combined.",
    ("principalcomponents", "N_COMPONENTS"): "Number of components computed; 0 = as many as "
                                             "bands.",
    ("principalcomponents", "STANDARDIZE"): "PCA of the correlation matrix (each band scaled "
                                            "to unit variance): use it for indices or bands "
                                            "of different units.",
    ("principalcomponents", "COMPONENTS"): "Components written, e.g. '2' for the paper's PC2; "
                                           "empty = every computed component.",
    ("principalcomponents", "OUTPUT"): "The principal components, one band each.",
    ("principalcomponents", "OUTPUT_TABLE"): "Loadings (correlation of each band with each "
                                             "component) and explained variance.",
    # laplaciandecomposition
    ("laplaciandecomposition", "INPUT"): "Raster split band by band into low and high "
                                         "frequency (low + high = input).",
    ("laplaciandecomposition", "SPACING"): "Typical distance between the geochemical samples "
                                           "(map units); used only when Levels is 0.",
    ("laplaciandecomposition", "OUTPUT_LOW"): "Low-frequency part: the background at the "
                                              "scale of the survey.",
    ("laplaciandecomposition", "OUTPUT_HIGH"): "High-frequency part: the detail finer than "
                                               "the survey.",
    # kmeansunits
    ("kmeansunits", "INPUT"): "Image or feature stack to classify (bands are standardized "
                              "so that each counts equally).",
    ("kmeansunits", "N_CLUSTERS"): "Number of units N ≥ 2 (one per geological body you "
                                   "expect).",
    ("kmeansunits", "OUTPUT"): "Unit numbers 0…N−1 (Unit 1…N in the legend); nodata where a "
                               "band is nodata.",
    # regressionfusion
    ("regressionfusion", "GEOCHEM"): "The kriged geochemistry (any resolution; resampled to "
                                     "the feature grid by cubic convolution).",
    ("regressionfusion", "FEATURES"): "Image features on the target grid (bands, indices or "
                                      "principal components).",
    ("regressionfusion", "UNITS"): "Optional unit raster on the feature grid (e.g. from "
                                   "K-means units) for the local regression; empty = units "
                                   "are computed with Number of units.",
    ("regressionfusion", "N_CLUSTERS"): "Number of K-means units computed when the local "
                                        "regression has no unit raster.",
    ("regressionfusion", "OUTPUT"): "The fused geochemistry on the feature grid (ppm).",
    # preparesentinel2
    ("preparesentinel2", "INPUT"): "The downloaded Sentinel-2 Level-1C or Level-2A product: "
                                   "the .SAFE folder, its .zip, or the MTD_MSIL*.xml inside.",
    ("preparesentinel2", "BANDS"): "Bands of the output stack; default the 10 m and 20 m "
                                   "bands in the order the mineral indices expect.",
    ("preparesentinel2", "RESOLUTION"): "10 m (coarser bands resampled by cubic convolution) "
                                        "or 20 m (10 m bands averaged over 2×2 pixels).",
    ("preparesentinel2", "MASK"): "Level-2A scene-classification classes made nodata "
                                  "(default clouds, cirrus, shadows); Level-1C has none.",
    ("preparesentinel2", "EXTENT"): "Optional clip; the output keeps the product's pixel "
                                    "grid.",
    ("preparesentinel2", "OUTPUT"): "Float32 reflectance stack (0–1), bands named with "
                                    "their central wavelength.",
    # anomalythresholds
    ("anomalythresholds", "INPUT"): "A geochemical raster (fused or kriged, ppm) whose "
                                    "anomalies are to be separated from the background.",
    ("anomalythresholds", "BAND"): "Band (element) of the raster to classify, 1-based.",
    ("anomalythresholds", "CLASSIFY"): "Which thresholds cut the classes: the "
                                       "concentration-area fractal breaks, median + 2 MAD "
                                       "(log10), mean + 2 SD (log10), or the percentiles.",
    ("anomalythresholds", "N_SEGMENTS"): "Number of straight segments fitted to the log-log "
                                         "concentration-area curve; 0 = chosen by the "
                                         "information criterion (BIC).",
    ("anomalythresholds", "PERCENTILES"): "Percentiles used as thresholds with 'percentiles', "
                                          "e.g. '95, 98'.",
    ("anomalythresholds", "STYLE_INPUT"): "Also style the input layer in these classes (its "
                                          "values are not changed).",
    ("anomalythresholds", "OUTPUT"): "Class of each pixel: 0 = background, then anomaly "
                                     "classes from low to high.",
    ("anomalythresholds", "OUTPUT_TABLE"): "The thresholds of every method, side by side.",
    # prepareaster
    ("prepareaster", "INPUT"): "The ASTER L1T scene as downloaded (AST_L1T_*.hdf).",
    ("prepareaster", "TIR"): "Thermal bands 10–14 (radiance): not included, a separate "
                             "90 m output, or resampled into the 15 m stack.",
    ("prepareaster", "DOS1"): "Dark-object subtraction (Chavez 1996): a simple haze "
                              "correction, each band's darkest value taken as 1 % "
                              "reflectance.",
    ("prepareaster", "EXTENT"): "Optional clip; the output keeps the scene's pixel grid.",
    ("prepareaster", "OUTPUT"): "VNIR + SWIR top-of-atmosphere reflectance on the 15 m grid.",
    ("prepareaster", "OUTPUT_TIR"): "Thermal radiance on its own 90 m grid (when chosen "
                                    "under Thermal bands).",
}
"""Help of a parameter that means something of its own in one algorithm."""


def parameter_help(algorithm, name):
    """The help text of parameter ``name`` of algorithm ``algorithm`` (its ``name()``), or ""."""
    return BY_ALGORITHM.get((algorithm, name)) or SHARED.get(name, "")
