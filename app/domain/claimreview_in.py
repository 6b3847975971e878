"""stub"""


def detect(body):
    return None
