"""The PlantDoc RetinaNet detector: data, augment, model, train, evaluate, export, serve, deploy.

One module per pipeline stage; the Metaflow steps in flows/ call these functions and stay short.
"""
