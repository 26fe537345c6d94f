"""Progress bars that still read correctly in a saved notebook, trusted or not.

In a notebook, tqdm draws a widget whose saved text fallback is the bar as it was when it was
created ("0%| | 0/1400"); JupyterLab shows that fallback until the notebook is trusted. Trusted,
it restores the saved widget, which has no kernel behind it: ipywidgets marks each part with a
broken-link icon, and the icon pushes the label onto two lines. These bars are the live widget
while they run; when one closes, its output becomes the finished bar as plain HTML and text, which
read the same trusted, untrusted or live. In a terminal they are plain tqdm bars.
"""

import html

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

    def static(self) -> dict:
        """The bar as it stands, without the widget: its description, a <progress> element, then tqdm's counts."""
        total = self.total or max(self.n, 1)
        counts = self.format_meter(**{**self.format_dict, "prefix": "", "bar_format": "{percentage:3.0f}% "
                                      "{n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"})
        return {"text/plain": str(self),
                "text/html": f'<div style="white-space: nowrap; font-family: monospace; font-size: 0.9em">'
                             f'{html.escape(self.desc or "")} <progress value="{min(self.n, total)}" max="{total}" '
                             f'style="width: 12em; vertical-align: middle"></progress> {html.escape(counts)}</div>'}

    def close(self):
        leave = self.leave and not self.disable
        super().close()
        if self.handle is not None:  # the widget is gone from the output: nothing to restore without a kernel
            self.handle.update(self.static() if leave else {"text/plain": str(self)}, raw=True)
            self.container.close()
            self.handle = None


def bar(*args, **kwargs):
    """tqdm(*args, **kwargs); in a notebook, one whose saved text is the final state of the bar."""
    kwargs = {"mininterval": 1.0, **kwargs}
    return _NotebookBar(*args, **kwargs) if issubclass(tqdm, tqdm_notebook) else tqdm(*args, **kwargs)
