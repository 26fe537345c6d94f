"""Progress bars that still read correctly in a saved notebook opened untrusted.

In a notebook, tqdm draws a widget whose saved text fallback is the bar as it was when it was
created ("0%| | 0/1400"); JupyterLab shows that fallback until the notebook is trusted. These
bars keep the widget and rewrite the fallback when they close, so a finished run reads as
finished. In a terminal they are plain tqdm bars.
"""

from tqdm.auto import tqdm
from tqdm.notebook import tqdm_notebook


class _NotebookBar(tqdm_notebook):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "display": False})
        self.handle = None
        if not self.disable:
            from IPython.display import display

            self.handle = display(self.bundle(), raw=True, display_id=True)
            self.displayed = True

    def bundle(self) -> dict:
        data = self.container._repr_mimebundle_()
        data["text/plain"] = str(self)  # the whole line, however long
        return data

    def close(self):
        leave = self.leave and not self.disable
        super().close()  # with leave=False this closes the widget: only the text stays
        if self.handle is not None:
            self.handle.update(self.bundle() if leave else {"text/plain": str(self)}, raw=True)
            self.handle = None


def bar(*args, **kwargs):
    """tqdm(*args, **kwargs); in a notebook, one whose saved text is the final state of the bar."""
    kwargs = {"mininterval": 1.0, **kwargs}
    return _NotebookBar(*args, **kwargs) if issubclass(tqdm, tqdm_notebook) else tqdm(*args, **kwargs)
