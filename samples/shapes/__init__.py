"""The synthetic shapes sample: ShapesConfig and ShapesDataset."""
