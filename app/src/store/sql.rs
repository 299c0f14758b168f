//! One way to run a statement with its parameters. Each function takes where to run it (the
//! pool, a connection, `&mut *tx`), the SQL, and its parameters as a tuple of values bound
//! in order to `$1, $2, ...` (`Params`):
//!
//! ```ignore
//! let changed = sql::exec(&mut *tx, "UPDATE trains SET heartbeat_at = $1 WHERE id = $2", (now, id)).await?;
//! let name: Option<String> = sql::scalar_optional(&pool, "SELECT name FROM api_tokens WHERE id = $1", (id,)).await?;
//! ```
//!
//! A parameter that cannot be encoded is a `sqlx::Error::Encode`, as it is with `.bind()`.

use super::Result;
use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::{Arguments, Encode, Executor, FromRow, Type};

/// A statement's parameters, appended in order (the first one is `$1`). Implemented for
/// `()`, tuples of up to 16 values, a `Vec` of parameters (a multi-row INSERT's rows, an
/// `IN (...)` list's `(value,)` items); `a.and(b)` is `a`'s values, then `b`'s.
pub(crate) trait Params<'q>: Sized {
    fn add_to(self, args: &mut AnyArguments<'q>) -> sqlx::Result<()>;

    /// These parameters, then `next`'s (their numbers follow on).
    fn and<P: Params<'q>>(self, next: P) -> And<Self, P> {
        And(self, next)
    }

    fn into_arguments(self) -> sqlx::Result<AnyArguments<'q>> {
        let mut args = AnyArguments::default();
        self.add_to(&mut args)?;
        Ok(args)
    }
}

/// One value as the next parameter.
fn add<'q, T>(args: &mut AnyArguments<'q>, value: T) -> sqlx::Result<()>
where
    T: 'q + Encode<'q, Any> + Type<Any>,
{
    args.add(value).map_err(sqlx::Error::Encode)
}

impl<'q> Params<'q> for () {
    fn add_to(self, _: &mut AnyArguments<'q>) -> sqlx::Result<()> {
        Ok(())
    }
}

impl<'q, P: Params<'q>> Params<'q> for Vec<P> {
    fn add_to(self, args: &mut AnyArguments<'q>) -> sqlx::Result<()> {
        self.into_iter().try_for_each(|p| p.add_to(args))
    }
}

/// Two sets of parameters, one after the other (`Params::and`).
pub(crate) struct And<A, B>(A, B);

impl<'q, A: Params<'q>, B: Params<'q>> Params<'q> for And<A, B> {
    fn add_to(self, args: &mut AnyArguments<'q>) -> sqlx::Result<()> {
        self.0.add_to(args)?;
        self.1.add_to(args)
    }
}

macro_rules! tuple_params {
    ($($t:ident $i:tt),+) => {
        impl<'q, $($t),+> Params<'q> for ($($t,)+)
        where
            $($t: 'q + Encode<'q, Any> + Type<Any>),+
        {
            fn add_to(self, args: &mut AnyArguments<'q>) -> sqlx::Result<()> {
                $(add(args, self.$i)?;)+
                Ok(())
            }
        }
    };
}

tuple_params!(A 0);
tuple_params!(A 0, B 1);
tuple_params!(A 0, B 1, C 2);
tuple_params!(A 0, B 1, C 2, D 3);
tuple_params!(A 0, B 1, C 2, D 3, E 4);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);

/// `n` parameters numbered from `first`, for an `IN (...)` list: `$3, $4, $5`.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    let marks: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    marks.join(", ")
}

/// Runs a statement: how many rows it changed.
pub(crate) async fn exec<'q, 'c, E>(conn: E, sql: &'q str, params: impl Params<'q>) -> Result<u64>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query_with(sql, params.into_arguments()?)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Whether a query answers any row (what the row holds is not read).
pub(crate) async fn exists<'q, 'c, E>(
    conn: E,
    sql: &'q str,
    params: impl Params<'q>,
) -> Result<bool>
where
    E: Executor<'c, Database = Any>,
{
    Ok(fetch_optional::<(), E>(conn, sql, params).await?.is_some())
}

/// The reading functions, which differ only in what they answer: `query_as_with` reads
/// rows into `O` (a tuple, or a `sqlx::FromRow` type read by column name),
/// `query_scalar_with` the first column of each row into `O`.
macro_rules! readers {
    ($($(#[$doc:meta])* $name:ident -> $out:ty = $query:ident.$fetch:ident where $row:ty;)+) => {$(
        $(#[$doc])*
        pub(crate) async fn $name<'q, 'c, O, E>(
            conn: E,
            sql: &'q str,
            params: impl Params<'q>,
        ) -> Result<$out>
        where
            E: Executor<'c, Database = Any>,
            O: Send + Unpin,
            $row: for<'r> FromRow<'r, AnyRow>,
        {
            Ok(sqlx::$query(sql, params.into_arguments()?)
                .$fetch(conn)
                .await?)
        }
    )+};
}

readers! {
    /// The one row a query answers (`RowNotFound` when none).
    fetch_one -> O = query_as_with.fetch_one where O;
    /// The first row a query answers, if any.
    fetch_optional -> Option<O> = query_as_with.fetch_optional where O;
    /// Every row a query answers.
    fetch_all -> Vec<O> = query_as_with.fetch_all where O;
    /// The first column of the one row a query answers (`RowNotFound` when none).
    scalar -> O = query_scalar_with.fetch_one where (O,);
    /// The first column of the first row a query answers, if any.
    scalar_optional -> Option<O> = query_scalar_with.fetch_optional where (O,);
    /// The first column of every row a query answers.
    scalars -> Vec<O> = query_scalar_with.fetch_all where (O,);
}
