"""``python -m lib.train``: train the course model on the synthetic scenes (see ``--help``)."""
from lib.train.recipe import main

if __name__ == "__main__":
    main()
