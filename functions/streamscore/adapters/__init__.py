"""Small wrappers around boto3 that speak in batches and in the project's exceptions."""
