"""The module ``pcatools nnunet install-trainers`` copies into nnU-Net (and a folder for ``nnUNet_extTrainer``).

``pcatools_l1dfl.py`` is the only module here, so this folder can also be named in nnU-Net's
``nnUNet_extTrainer`` variable: nnU-Net then finds the pcatools trainers without any file written
into its own package.
"""
