// Deep Vision Lab book: a search result lands on the section that discusses the term.
// The search page hands its words to the page it opens (Sphinx's sphinx_highlight.js), but that script marks them
// only on pages without searchtools.js, which pydata-sphinx-theme loads on every page: so the marking is called
// here. Then the page scrolls to the first mark in the section holding the most of them (a term named once in a
// chapter's introduction is discussed further down), skipping marks inside closed answers.
window.addEventListener("load", () => {
  if (document.getElementById("search-results") || typeof SphinxHighlight === "undefined") return;
  SphinxHighlight.highlightSearchWords();
  setTimeout(() => {  // the words are marked after a 10 ms timeout
    const marks = [...document.querySelectorAll("article .highlighted")].filter(m => m.checkVisibility());
    if (!marks.length) return;
    const count = new Map();
    for (const m of marks) count.set(m.closest("section"), (count.get(m.closest("section")) || 0) + 1);
    const best = [...count.entries()].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
    marks.find(m => m.closest("section") === best).scrollIntoView({block: "center"});
  }, 100);
});
