"""The reader's HTML: article and front pages, feeds, the embeddable Read next."""
