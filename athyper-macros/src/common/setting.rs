use syn::Ident;
use syn::ext::IdentExt;

use super::Errors;

/// One option of an attribute: where it was written and, if its value had
/// the right form, the value.
///
/// Every option goes through [`Setting::set`], so a repeated option is
/// reported the same way for all of them: once, on the second occurrence.
pub(crate) struct Setting<T> {
    /// The key as first written, and its position among the attribute's
    /// options: cross-checks report a contradiction on the later of two.
    key: Option<(Ident, usize)>,
    value: Option<T>,
}

impl<T> Default for Setting<T> {
    fn default() -> Self {
        Setting {
            key: None,
            value: None,
        }
    }
}

impl<T> Setting<T> {
    /// Records the option written as `key` at `position`. A value that
    /// failed to convert still marks the option as given, so that a later
    /// repeat is reported as a duplicate rather than silently winning.
    pub(crate) fn set(
        &mut self,
        errors: &mut Errors,
        key: &Ident,
        position: usize,
        value: syn::Result<T>,
    ) {
        if self.key.is_some() {
            let name = key.unraw();
            errors.push_at(
                position,
                syn::Error::new(
                    key.span(),
                    format!("duplicate option `{name}`; it is already set earlier in this attribute, remove one of them"),
                ),
            );
            return;
        }
        self.key = Some((key.clone(), position));
        match value {
            Ok(value) => self.value = Some(value),
            Err(error) => errors.push_at(position, error),
        }
    }

    /// The value, if the option was given with a value of the right form.
    pub(crate) fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The key as written, if the option was given at all.
    pub(crate) fn key(&self) -> Option<&Ident> {
        self.key.as_ref().map(|(key, _)| key)
    }

    /// Where among the attribute's options this one was written.
    pub(crate) fn position(&self) -> Option<usize> {
        self.key.as_ref().map(|&(_, position)| position)
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    #[test]
    fn reports_a_repeat_once_and_keeps_the_first_value() {
        let mut errors = Errors::new();
        let key = Ident::new("attempts", Span::call_site());
        let mut setting = Setting::default();
        setting.set(&mut errors, &key, 0, Ok(1));
        setting.set(&mut errors, &key, 1, Ok(2));
        setting.set(
            &mut errors,
            &key,
            2,
            Err(syn::Error::new(key.span(), "bad")),
        );
        assert_eq!(setting.value(), Some(&1));
        assert_eq!(setting.position(), Some(0));
        assert_eq!(
            errors.messages(),
            [
                "duplicate option `attempts`; it is already set earlier in this attribute, remove one of them",
                "duplicate option `attempts`; it is already set earlier in this attribute, remove one of them",
            ]
        );
    }

    #[test]
    fn a_bad_first_value_still_counts_as_given() {
        let mut errors = Errors::new();
        let key = Ident::new("attempts", Span::call_site());
        let mut setting = Setting::<u32>::default();
        setting.set(
            &mut errors,
            &key,
            0,
            Err(syn::Error::new(key.span(), "bad")),
        );
        setting.set(&mut errors, &key, 1, Ok(2));
        assert_eq!(setting.value(), None);
        assert!(setting.key().is_some());
        assert_eq!(errors.messages().len(), 2);
        assert!(errors.messages()[1].starts_with("duplicate option `attempts`"));
    }
}
