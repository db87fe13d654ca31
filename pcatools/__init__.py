"""pcatools: reference toolkit for loss-function research in PSMA PET/CT lesion segmentation."""

__version__ = "0.1.0"
