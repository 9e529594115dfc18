"""The MS COCO sample: CocoConfig, the classic command line and training schedule."""
