"""kettle's AWS Lambda handler: the only code that knows what a Lambda event is."""
