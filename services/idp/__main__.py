"""`python -m services.idp`: runs the embedded identity provider from the project configuration."""

from __future__ import annotations

import logging

from services.common.config import load_config

from .serve import serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(load_config())


if __name__ == "__main__":
    main()
