// Progressive enhancement only: every page reads and every form works without this file.
// Filter forms marked data-autosubmit submit themselves when a select changes.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.form && field.form.dataset.autosubmit !== undefined) {
    field.form.requestSubmit();
  }
});
