"""Code generated from proto/powerplane/v1 by clients/python/generate.sh. DO NOT EDIT."""
